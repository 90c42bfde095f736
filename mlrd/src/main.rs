//! mlrd, the TMip Mobile Location Register.
#![allow(dead_code)]
mod config;
mod journal;
mod register;
mod status;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-V") {
        println!("mlrd {}", tmip::VERSION);
        return;
    }
    eprintln!("mlrd: not yet implemented");
    std::process::exit(2);
}
