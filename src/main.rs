//! tmipd, the TMip correspondent node.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-V") {
        println!("tmipd {}", tmip::VERSION);
        return;
    }
    eprintln!("tmipd: not yet implemented");
    std::process::exit(2);
}
