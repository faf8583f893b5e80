fn main() -> std::process::ExitCode {
    common::runtime::component_main("roomserver", roomserver::run)
}
