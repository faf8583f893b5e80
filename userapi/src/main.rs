fn main() -> std::process::ExitCode {
    common::runtime::component_main("userapi", userapi::run)
}
