//! `homeserver`: writes configs, and runs every component in one process.

mod embedded_nats;
mod generate_config;
mod monolith;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "A Matrix homeserver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a complete config to stdout and write a fresh signing key under DIR.
    GenerateConfig(generate_config::Args),
    /// Run all components in one process.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print one config value by its dotted path (global.client_listen), for scripts.
    ConfigValue {
        #[arg(long)]
        config: PathBuf,
        key: String,
    },
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::GenerateConfig(args) => generate_config::run(args),
        Command::Run { config } => monolith::run(&config),
        Command::ConfigValue { config, key } => {
            let config = common::runtime::load_config_or_exit(&config);
            match config.value_at(&key) {
                Some(value) => {
                    println!("{value}");
                    std::process::ExitCode::SUCCESS
                }
                None => {
                    eprintln!("no config value at {key}");
                    std::process::ExitCode::from(2)
                }
            }
        }
    }
}
