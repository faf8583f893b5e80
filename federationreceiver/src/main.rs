fn main() -> std::process::ExitCode {
    common::runtime::component_main("federationreceiver", federationreceiver::run)
}
