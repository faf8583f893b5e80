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
    /// Create an account directly in the database (the server need not run).
    CreateAccount {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        /// Make the account a server admin.
        #[arg(long)]
        admin: bool,
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
        Command::CreateAccount { config, username, password, admin } => {
            create_account(&config, &username, &password, admin)
        }
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

fn create_account(config: &std::path::Path, username: &str, password: &str, admin: bool) -> std::process::ExitCode {
    let config = common::runtime::load_config_or_exit(config);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(userapi::create_account_offline(&config, username, password, admin)) {
        Ok(Ok(user_id)) => {
            println!("{user_id}");
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(refused)) => {
            eprintln!("cannot create the account: {}", refused.message);
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot create the account: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
