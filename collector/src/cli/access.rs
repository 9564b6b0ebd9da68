//! `token add|revoke|list` (API tokens for tools) and `user add|passwd|remove|list` (NOC console
//! users with passwords).

use super::{CliError, StoreArgs, check_id, print_lines, print_secret, with_store};
use crate::now;
use crate::store::OpenMode;
use clap::{Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it on stdout (only the token; shown once, stored hashed).
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API token; its next request is refused.
    Revoke {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List API tokens (names and roles, never the tokens).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a NOC user. The password is read from stdin with --password-stdin (one line);
    /// otherwise a strong one is generated and printed on stdout once.
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password (ends their sessions); same password rules as `add`.
    Passwd {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a user and end their sessions (their notes keep their name).
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users and roles.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
}

pub(super) async fn token(cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Add { name, role, store } => {
            check_id(&name).map_err(|_| {
                CliError::Usage(format!(
                    "{name:?} is not a token name (1..=64 of A-Z a-z 0-9 . _ : -)"
                ))
            })?;
            let role = role_of(role);
            let token = crate::auth::new_token().map_err(|e| CliError::Failed(e.to_string()))?;
            let hash = crate::auth::token_sha256(&token);
            let n = name.clone();
            with_store(&store, OpenMode::CreateAndMigrate, |s| async move {
                s.api_token_add(&n, role, &hash, now()).await
            })
            .await?;
            print_secret(&token)?;
            eprintln!(
                "created API token {name} ({}); the token above is shown once: send it as \
                 `Authorization: Bearer <token>`",
                role.as_str()
            );
            Ok(())
        }
        TokenCommand::Revoke { name, store } => {
            let n = name.clone();
            let found = with_store(&store, OpenMode::MustExist, |s| async move {
                s.api_token_revoke(&n, now()).await
            })
            .await?;
            said_if(
                found,
                format!("revoked API token {name}"),
                format!("no active API token {name:?}"),
            )
        }
        TokenCommand::List { store } => {
            let list = with_store(&store, OpenMode::MustExist, |s| async move {
                s.api_token_list().await
            })
            .await?;
            print_lines(list.into_iter().map(|t| {
                format!(
                    "{}  {}  created {}  {}",
                    t.name,
                    t.role.as_str(),
                    t.created_at,
                    t.revoked_at
                        .map_or("active".to_owned(), |r| format!("revoked {r}"))
                )
            }))?;
            Ok(())
        }
    }
}

fn role_of(r: RoleArg) -> crate::auth::Role {
    match r {
        RoleArg::Viewer => crate::auth::Role::Viewer,
        RoleArg::Operator => crate::auth::Role::Operator,
    }
}

/// The new password: the first line of stdin, or a generated one (`true`: print it).
fn new_password(from_stdin: bool) -> Result<(String, bool), CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        crate::web::password::check_new(&pw).map_err(|e| CliError::Usage(e.to_string()))?;
        Ok((pw, false))
    } else {
        // 96 random bits as 24 hex characters.
        let pw = crate::auth::random_hex(12).map_err(|e| CliError::Failed(e.to_string()))?;
        Ok((pw, true))
    }
}

async fn hash_password(pw: String) -> Result<String, CliError> {
    tokio::task::spawn_blocking(move || crate::web::password::hash(&pw))
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
        .map_err(|e| CliError::Failed(e.to_string()))
}

pub(super) async fn user(cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            store,
        } => {
            check_id(&name).map_err(|_| {
                CliError::Usage(format!(
                    "{name:?} is not a user name (1..=64 of A-Z a-z 0-9 . _ : -)"
                ))
            })?;
            let role = role_of(role);
            let (pw, show) = new_password(password_stdin)?;
            let phc = hash_password(pw.clone()).await?;
            let n = name.clone();
            with_store(&store, OpenMode::CreateAndMigrate, |s| async move {
                s.noc_user_add(&n, role, &phc, now()).await
            })
            .await?;
            if show {
                print_secret(&pw)?;
            }
            eprintln!(
                "added NOC user {name} ({}){}",
                role.as_str(),
                if show {
                    "; the generated password above is shown once"
                } else {
                    ""
                }
            );
            Ok(())
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            store,
        } => {
            let (pw, show) = new_password(password_stdin)?;
            let phc = hash_password(pw.clone()).await?;
            let n = name.clone();
            if !with_store(&store, OpenMode::MustExist, |s| async move {
                s.noc_user_set_password(&n, &phc, now()).await
            })
            .await?
            {
                return Err(CliError::Failed(format!("no NOC user {name:?}")));
            }
            if show {
                print_secret(&pw)?;
            }
            eprintln!("new password for {name}; their sessions were ended");
            Ok(())
        }
        UserCommand::Remove { name, store } => {
            let n = name.clone();
            let found = with_store(&store, OpenMode::MustExist, |s| async move {
                s.noc_user_remove(&n).await
            })
            .await?;
            said_if(
                found,
                format!("removed NOC user {name}; their sessions were ended"),
                format!("no NOC user {name:?}"),
            )
        }
        UserCommand::List { store } => {
            let list = with_store(&store, OpenMode::MustExist, |s| async move {
                s.noc_user_list().await
            })
            .await?;
            print_lines(
                list.into_iter()
                    .map(|u| format!("{}  {}  created {}", u.name, u.role.as_str(), u.created_at)),
            )?;
            Ok(())
        }
    }
}

/// What a command that names one thing says: `done` on stderr when it `found` it, otherwise
/// the failure `missing`.
fn said_if(found: bool, done: String, missing: String) -> Result<(), CliError> {
    if found {
        eprintln!("{done}");
        Ok(())
    } else {
        Err(CliError::Failed(missing))
    }
}
