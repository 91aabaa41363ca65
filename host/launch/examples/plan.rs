//! Prints the plan for a command: `cargo run -p bulkhead-launch --example plan -- CMD ARGS…`.

fn main() {
    let command: Vec<String> = std::env::args().skip(1).collect();
    let env = match bulkhead_launch::LaunchEnv::from_process() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("environment: {e}");
            std::process::exit(2);
        }
    };
    match bulkhead_launch::analyze(&command, &env) {
        Ok(plan) => println!("{plan:#?}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
