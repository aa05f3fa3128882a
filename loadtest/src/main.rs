//! The `vridge-loadtest` binary: run one scenario, print the table, then
//! the JSON summary as the last line of standard output.

use clap::Parser;
use vridge_loadtest::cli::{Cli, execute};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = execute(cli).await?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}
