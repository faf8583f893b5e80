fn main() -> std::process::ExitCode {
    common::runtime::component_main("syncapi", syncapi::run_alone)
}
