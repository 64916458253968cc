//! The command line: `medlabel <subcommand>`. Every subcommand reads the same configuration as
//! the server and first applies pending migrations, so each works on a fresh database.

use std::io::BufRead as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::{password, Role};
use crate::config::Settings;
use crate::models::{groups, users};
use crate::startup::{self, Application};
use crate::state::AppState;

#[derive(Debug, Parser)]
#[command(
    name = "medlabel",
    version,
    about = "Role-based medical imaging and labelling backend",
    after_help = crate::config::environment_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: migrate, seed the groups, create a first admin when none exists.
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Create the doctor, researcher and admin groups (idempotent).
    CreateUserGroups,
    /// Create a user; the password comes from standard input or is generated and printed.
    CreateUser(CreateUserArgs),
    /// Load realistic demo data: users (printed with passwords and API tokens), a vocabulary
    /// linked to real ICD codes, generated images with diagnoses. Running it again adds more.
    CreateDummyData {
        /// How many doctors to create (each uploads and labels images).
        #[arg(long, default_value_t = 3)]
        doctors: usize,
        /// How many researchers to create (each curates vocabulary).
        #[arg(long, default_value_t = 2)]
        researchers: usize,
        /// How many generated images each doctor uploads.
        #[arg(long, default_value_t = 20)]
        images_per_doctor: usize,
        /// Seed for the generated content (random when absent).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the summary and the users' credentials as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the OpenAPI document (what `openapi/openapi.json` holds).
    Openapi,
    /// Write a dataset's export archive to a file: the same bytes as
    /// `GET /api/v1/datasets/{id}/export?format=...` (a progress bar on a terminal).
    ExportDataset {
        /// The dataset's id.
        id: String,
        /// coco, yolo or csv
        #[arg(long, value_parser = ["coco", "yolo", "csv"])]
        format: String,
        /// The ZIP file to write (replaced if it exists; written beside it first).
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Copy the SQLite database while servers keep running (VACUUM INTO), check the copy
    /// (PRAGMA integrity_check) and print its size and rows. PostgreSQL: use pg_dump.
    Backup {
        /// The file to write (replaced if it exists; written beside it first).
        #[arg(long)]
        output: std::path::PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace the SQLite database with a backup (checked first), then migrate it. Refused
    /// while any server uses the database. PostgreSQL: use pg_restore.
    Restore {
        /// The backup file to restore.
        #[arg(long)]
        input: std::path::PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password for a user (generated and printed, or read from standard input)
    /// and end the user's sessions; audited as a CLI event.
    ResetPassword {
        /// The user's login name.
        username: String,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print the result (and a generated password) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deactivate a user and end every session and API token of theirs at once; audited as a
    /// CLI event.
    DeactivateUser {
        /// The user's login name.
        username: String,
    },
    /// Import a code list: TSV or TSV.gz with a header row (`code`, `long_description` or
    /// `description`, optional `short_description` and `billable`). Idempotent.
    ImportCodes {
        /// icd-10, icd-9 or snomed-ct
        #[arg(long)]
        system: String,
        /// The code list (`.tsv` or `.tsv.gz`).
        file: std::path::PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateUserArgs {
    /// The login name (unique, ignoring case).
    #[arg(long)]
    pub username: String,
    /// A role to grant; repeat for several, leave out for a user without a role.
    #[arg(long = "role", value_enum)]
    pub roles: Vec<RoleArg>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// The name shown to other users.
    #[arg(long)]
    pub full_name: Option<String>,
    /// A contact address (checked for form only).
    #[arg(long)]
    pub email: Option<String>,
    /// Print the result (and a generated password) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Doctor,
    Researcher,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Doctor => Role::Doctor,
            RoleArg::Researcher => Role::Researcher,
            RoleArg::Admin => Role::Admin,
        }
    }
}

pub fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(settings),
        Command::Migrate => {
            let state = AppState::open(settings)?;
            let applied = state.db.migrate()?;
            if applied.is_empty() {
                println!("the database is up to date");
            }
            for version in applied {
                println!("applied migration {version}");
            }
            Ok(())
        }
        Command::CreateUserGroups => {
            let state = AppState::open(settings)?;
            state.db.migrate()?;
            let created = groups::ensure_groups(&mut *state.db.get()?)?;
            for name in created {
                println!("created group {name}");
            }
            Ok(())
        }
        Command::CreateUser(args) => create_user(settings, args),
        Command::ImportCodes { system, file } => import_codes(settings, &system, &file),
        Command::Openapi => {
            print!("{}", crate::openapi::openapi_json());
            Ok(())
        }
        Command::ExportDataset { id, format, output } => {
            export_dataset(settings, &id, &format, &output)
        }
        Command::Backup { output, json } => {
            let report = crate::operator::backup(&settings, &output)?;
            print_copy_report("backed up to", &report, json)
        }
        Command::Restore { input, json } => {
            let report = crate::operator::restore(&settings, &input)?;
            print_copy_report("restored", &report, json)
        }
        Command::ResetPassword {
            username,
            password_stdin,
            json,
        } => {
            let given = password_stdin.then(read_password_line).transpose()?;
            let generated = given.is_none();
            let (user, secret) = crate::operator::reset_password(&settings, &username, given)?;
            let shown = generated.then_some(secret);
            if json {
                let out = serde_json::json!({"id": user.uuid, "username": user.username, "password": shown});
                println!("{out}");
            } else {
                println!(
                    "reset the password of {} (id {}); their sessions ended",
                    user.username, user.uuid
                );
                if let Some(secret) = shown {
                    println!("password: {secret}");
                }
            }
            Ok(())
        }
        Command::DeactivateUser { username } => {
            let user = crate::operator::deactivate_user(&settings, &username)?;
            println!(
                "deactivated {} (id {}); their sessions and API tokens ended",
                user.username, user.uuid
            );
            Ok(())
        }
        Command::CreateDummyData {
            doctors,
            researchers,
            images_per_doctor,
            seed,
            json,
        } => {
            let options = crate::dummy_data::DummyOptions {
                doctors,
                researchers,
                images_per_doctor,
                seed: seed.unwrap_or_else(rand::random),
            };
            create_dummy_data(settings, options, json)
        }
    }
}

/// Binds first, so that a taken port fails before anything is written (database, keys, a new
/// admin's password); the first admin is created only once the server is built.
fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = startup::listen(&settings.bind)?;
    let state = AppState::open(settings)?;
    // Instances starting together on one database take turns until the first admin exists.
    let startup_turn = state.db.startup_lock()?;
    startup::prepare(&state)?;
    // Held while serving (the SQLite file exists once migrated): `restore` refuses to replace
    // a database a server uses.
    let _in_use = crate::operator::hold_serve_lock(&state.settings)?;
    let imported = crate::codesets::import_bundled_if_absent(&mut *state.db.get()?)?;
    for (system, added) in &imported {
        tracing::info!(system, added, "loaded the bundled code list");
    }
    if !imported.is_empty() {
        crate::code_index::release_freed_memory();
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build_on(listener, state.clone(), |_| {})?;
        ensure_first_admin(&state)?;
        drop(startup_turn);
        // Storage no row references (left by a crash mid-upload): swept now and hourly.
        let sweeper = state.clone();
        actix_web::rt::spawn(async move {
            let grace = std::time::Duration::from_secs(sweeper.settings.orphan_grace_secs);
            loop {
                if let Err(err) = crate::orphans::sweep(&sweeper.db, &sweeper.storage, grace).await
                {
                    tracing::warn!(error = %err, "sweeping unreferenced storage failed");
                }
                actix_web::rt::time::sleep(crate::orphans::SWEEP_INTERVAL).await;
            }
        });
        let bind = &state.settings.bind;
        let host = bind.rsplit_once(':').map(|(h, _)| h).unwrap_or(bind);
        tracing::info!(address = %format!("http://{host}:{}", app.port()), "medlabel is listening");
        app.run_until_stopped()
            .await
            .context("server stopped with an error")
    })
}

/// When no active admin exists, creates one and prints its credentials once.
fn ensure_first_admin(state: &AppState) -> anyhow::Result<()> {
    let mut conn = state.db.get()?;
    if users::active_admin_exists(&mut conn)? {
        return Ok(());
    }
    let mut username = "admin".to_owned();
    while users::username_taken(&mut conn, &username)? {
        username = format!("admin-{}", &uuid::Uuid::now_v7().simple().to_string()[26..]);
    }
    let started = std::time::Instant::now();
    let secret = password::generate_password();
    let hash = password::hash_password(&secret)?;
    crate::db::write_transaction(&mut conn, |conn| {
        let user = users::insert_user(
            conn,
            users::NewUser {
                username: &username,
                password_hash: &hash,
                full_name: None,
                email: None,
                roles: &[Role::Admin],
            },
        )?;
        let event = crate::operator::command_event("serve (first admin)", &user, started);
        crate::models::events::insert_event_in_change(conn, &event)
    })?;
    println!("Created the first admin. Keep these credentials now; they are not shown again.");
    println!("  username: {username}");
    println!("  password: {secret}");
    Ok(())
}

fn create_user(settings: Settings, args: CreateUserArgs) -> anyhow::Result<()> {
    if crate::text::username_problem(&args.username).is_some() {
        anyhow::bail!("username must be 1 to 150 letters, digits or @ . + - _");
    }
    let (secret, generated) = if args.password_stdin {
        (read_password_line()?, false)
    } else {
        (password::generate_password(), true)
    };
    password::check_policy(&secret, &args.username).map_err(|m| anyhow::anyhow!("password {m}"))?;
    let roles: Vec<Role> = args.roles.into_iter().map(Role::from).collect();

    let state = AppState::open(settings)?;
    state.db.migrate()?;
    let mut conn = state.db.get()?;
    if users::username_taken(&mut conn, &args.username)? {
        anyhow::bail!("username {:?} is taken", args.username);
    }
    let started = std::time::Instant::now();
    let hash = password::hash_password(&secret)?;
    let user = crate::db::write_transaction(&mut conn, |conn| {
        let user = users::insert_user(
            conn,
            users::NewUser {
                username: &args.username,
                password_hash: &hash,
                full_name: args.full_name.as_deref(),
                email: args.email.as_deref(),
                roles: &roles,
            },
        )?;
        let event = crate::operator::command_event("create-user", &user, started);
        crate::models::events::insert_event_in_change(conn, &event)?;
        diesel::QueryResult::Ok(user)
    })?;
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    if args.json {
        let out = serde_json::json!({
            "id": user.uuid,
            "username": user.username,
            "roles": names,
            "password": generated.then_some(&secret),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "created user {} (id {}, roles: {})",
        user.username,
        user.uuid,
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    if generated {
        println!("password: {secret}");
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn print_copy_report(
    done: &str,
    report: &crate::operator::CopyReport,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "{done} {}: {} bytes, {} rows in {} tables, integrity ok, in {:.2}s",
        report.path.display(),
        report.bytes,
        report.rows(),
        report.tables.len(),
        report.seconds
    );
    Ok(())
}

fn import_codes(settings: Settings, system: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let parsed = crate::codesets::parse_code_list(system, input)?;
    let state = AppState::open(settings)?;
    state.db.migrate()?;
    let bar = indicatif::ProgressBar::new(parsed.rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} codes {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let added = crate::codesets::import(&mut *state.db.get()?, &parsed, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    println!(
        "{system}: {added} codes added, {} already present, {} lines rejected, in {:.1}s",
        parsed.rows.len() - added,
        parsed.rejected.len(),
        started.elapsed().as_secs_f64()
    );
    for (line, code) in parsed.rejected.iter().take(10) {
        println!("  line {line}: {code:?} is not a valid {system} code");
    }
    Ok(())
}

fn create_dummy_data(
    settings: Settings,
    options: crate::dummy_data::DummyOptions,
    json: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let state = AppState::open(settings)?;
    let bar = indicatif::ProgressBar::new((options.doctors * options.images_per_doctor) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = actix_web::rt::System::new().block_on(crate::dummy_data::create_dummy_data(
        &state,
        &options,
        || bar.inc(1),
    ))?;
    bar.finish_and_clear();
    if json {
        let users: Vec<_> = summary
            .users
            .iter()
            .map(|u| {
                serde_json::json!({
                    "username": u.username, "roles": u.roles,
                    "password": u.password, "token": u.token,
                })
            })
            .collect();
        let out = serde_json::json!({
            "seed": options.seed, "images": summary.images, "diagnoses": summary.diagnoses,
            "annotations": summary.annotations, "labels": summary.labels,
            "diseases": summary.diseases, "users": users,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "created {} users, {} images with {} diagnoses and {} annotations, {} labels and {} diseases (seed {}) in {:.1}s",
        summary.users.len(),
        summary.images,
        summary.diagnoses,
        summary.annotations,
        summary.labels,
        summary.diseases,
        options.seed,
        started.elapsed().as_secs_f64()
    );
    println!("{:<28} {:<11} {:<26} token", "username", "role", "password");
    for user in &summary.users {
        println!(
            "{:<28} {:<11} {:<26} {}",
            user.username,
            user.roles.join(","),
            user.password,
            user.token
        );
    }
    Ok(())
}

fn export_dataset(
    settings: Settings,
    id: &str,
    format: &str,
    output: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::export::{Exporter, Format};
    let started = std::time::Instant::now();
    let format = Format::from_name(format).context("format must be coco, yolo or csv")?;
    let id = uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| anyhow::anyhow!("{id:?} is not a dataset id (a UUID)"))?;
    let state = AppState::open(settings)?;
    state.db.migrate()?;
    let (dataset, response) = {
        let mut conn = state.db.get()?;
        let dataset = crate::models::datasets::find(&mut conn, &id)
            .map_err(|_| anyhow::anyhow!("no dataset has the id {id}"))?;
        let response = crate::views::datasets::dataset_response(&mut conn, dataset.clone())?;
        (dataset, response)
    };
    let directory = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut partial = tempfile::Builder::new();
    partial.prefix(".medlabel-export-");
    // The finished file gets the mode any new file gets here (0666 less the umask), not the
    // 0600 of a temporary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        partial.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let partial = partial
        .tempfile_in(directory)
        .with_context(|| format!("creating a file in {}", directory.display()))?;
    let bar = indicatif::ProgressBar::new(dataset.image_count.max(0) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let counts = (response.image_count, response.annotation_count);
    let file = actix_web::rt::System::new().block_on(async {
        let exporter = Exporter::new(&state, tokio::runtime::Handle::current());
        let bar = bar.clone();
        let file = std::io::BufWriter::new(partial.reopen()?);
        tokio::task::spawn_blocking(move || {
            exporter
                .write(&dataset, &response, format, file, &mut || bar.inc(1))
                .map_err(anyhow::Error::from)
        })
        .await?
    })?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    bar.finish_and_clear();
    partial
        .persist(output)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "wrote {} ({} images, {} annotations, {}) in {:.1}s",
        output.display(),
        counts.0,
        counts.1,
        format.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
