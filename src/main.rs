//! `shardpbx`: the appliance binary. `run` starts the shards and the control
//! core; the other subcommands read the config and the store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use shardpbx::{app, cli, config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ShardPBX: a programmable SIP B2BUA and RTP relay on a shard-per-core runtime.
#[derive(Parser)]
#[command(name = "shardpbx", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// The config file.
    #[arg(long, short = 'c', value_name = "PATH", default_value = config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// A perf profile that overrides [runtime] (e.g. perf/many-core.toml).
        #[arg(long, value_name = "PATH")]
        perf: Option<PathBuf>,
    },
    /// Validate a config (and perf profile) and exit: 0 when usable, 2 when not.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "PATH")]
        perf: Option<PathBuf>,
    },
    /// Registrations in the store (works while the server runs).
    Registrations {
        #[command(subcommand)]
        command: RegistrationsCommand,
    },
    /// Call detail records in the store (works while the server runs).
    Cdr {
        #[command(subcommand)]
        command: CdrCommand,
    },
    /// Console users (works while the server runs).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Console API tokens (works while the server runs).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a console user (password stored as an Argon2id hash).
    Add {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        /// The password; `-` reads it from the first line of stdin.
        #[arg(long)]
        password: String,
    },
    /// Change a console user's password (ends its sessions).
    Passwd {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
        /// The new password; `-` reads it from the first line of stdin.
        #[arg(long)]
        password: String,
    },
    /// Remove a console user.
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token; prints it once, alone on the last line.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        name: String,
        /// Comma-separated: read, write, calls.
        #[arg(long, value_name = "SCOPES")]
        scopes: String,
    },
    /// List tokens (id, name, scopes, created; never the secret).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum CdrCommand {
    /// List CDRs, oldest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only calls that started at or after this time (RFC 3339 or unix seconds).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print one JSON array of CDRs in the API.md format.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RegistrationsCommand {
    /// List live bindings.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this address of record (`sip:1001@pbx.example.com` or just `1001`).
        #[arg(long)]
        aor: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, perf } => app::run(&config.config, perf.as_deref()),
        Command::CheckConfig { config, perf } => cli::check_config(&config.config, perf.as_deref()),
        Command::Registrations {
            command: RegistrationsCommand::List { config, aor, json },
        } => cli::registrations_list(&config.config, aor.as_deref(), json),
        Command::Cdr {
            command:
                CdrCommand::List {
                    config,
                    since,
                    limit,
                    json,
                },
        } => cli::cdr_list(&config.config, since.as_deref(), limit, json),
        Command::User { command } => match command {
            UserCommand::Add {
                config,
                username,
                password,
            } => cli::console::user_add(&config.config, &username, &password),
            UserCommand::Passwd {
                config,
                username,
                password,
            } => cli::console::user_passwd(&config.config, &username, &password),
            UserCommand::Remove { config, username } => {
                cli::console::user_remove(&config.config, &username)
            }
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                config,
                name,
                scopes,
            } => cli::console::token_create(&config.config, &name, &scopes),
            TokenCommand::List { config, json } => cli::console::token_list(&config.config, json),
            TokenCommand::Revoke { config, id } => cli::console::token_revoke(&config.config, &id),
        },
    }
}
