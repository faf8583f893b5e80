fn main() -> std::process::ExitCode {
    common::runtime::component_main("clientapi", clientapi::run)
}
