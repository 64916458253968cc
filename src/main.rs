use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = medlabel::cli::Cli::parse();
    let settings = match medlabel::config::Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return std::process::ExitCode::from(2);
        }
    };
    medlabel::telemetry::init(&settings);
    match medlabel::cli::run(cli, settings) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
