fn main() -> std::process::ExitCode {
    common::runtime::component_main("federationsender", federationsender::run)
}
