//! `cubewalk-server world export|import`: a world's chunks to a checksummed file and back (the
//! format and guarantees: `cubewalk_server::store::backup`). Run directly on a Redis URL, as
//! the `admin` commands are; each prints a JSON summary.

use crate::admin_cli::{open, StoreArgs};
use cubewalk_protocol::WorldId;
use cubewalk_server::store::backup::{export_world, import_world, ImportMode};
use std::io::BufReader;
use std::path::PathBuf;

/// The world commands.
#[derive(clap::Subcommand)]
pub enum WorldCommand {
    /// Stream every chunk of a world (blob, revision, write sequence) to a checksummed file.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The world.
        #[arg(long)]
        world: String,
        /// The file to write (written as `<FILE>.partial`, renamed when complete); `-` for
        /// standard output (the summary then goes to standard error).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an export whole (count and checksum), then write its chunks exactly as exported.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The export to read; `-` for standard input.
        #[arg(long = "in")]
        input: PathBuf,
        /// Import into this world instead of the one the file names.
        #[arg(long)]
        world: Option<String>,
        /// Overwrite the chunks the file names when the world holds chunks already (without
        /// it, an import into a world holding any chunk is refused before writing).
        #[arg(long)]
        replace: bool,
    },
}

fn world(s: &str) -> Result<WorldId, String> {
    WorldId::new(s).map_err(|e| format!("world {s}: {e}"))
}

fn json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// Runs one world command.
pub async fn run(command: WorldCommand) -> Result<(), String> {
    match command {
        WorldCommand::Export {
            store,
            world: w,
            out,
        } => {
            let w = world(&w)?;
            let store = open(&store).await?;
            if out.as_os_str() == "-" {
                let summary = export_world(&store, &w, std::io::stdout().lock())
                    .await
                    .map_err(|e| e.to_string())?;
                // Standard output carries the export itself.
                eprintln!("{}", json(&summary)?);
                return Ok(());
            }
            // A file at `out` is always a whole export: a failed run leaves only `.partial`.
            let mut partial = out.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = std::fs::File::create(&partial)
                .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
            let summary = export_world(&store, &w, &file)
                .await
                .map_err(|e| e.to_string())?;
            file.sync_all()
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
            std::fs::rename(&partial, &out)
                .map_err(|e| format!("cannot rename to {}: {e}", out.display()))?;
            println!("{}", json(&summary)?);
            Ok(())
        }
        WorldCommand::Import {
            store,
            input,
            world: w,
            replace,
        } => {
            let target = w.as_deref().map(world).transpose()?;
            let mode = if replace {
                ImportMode::Replace
            } else {
                ImportMode::IntoEmpty
            };
            let store = open(&store).await?;
            let summary = if input.as_os_str() == "-" {
                import_world(&store, target.as_ref(), std::io::stdin().lock(), mode).await
            } else {
                let file = std::fs::File::open(&input)
                    .map_err(|e| format!("cannot open {}: {e}", input.display()))?;
                import_world(&store, target.as_ref(), BufReader::new(file), mode).await
            }
            .map_err(|e| e.to_string())?;
            println!("{}", json(&summary)?);
            Ok(())
        }
    }
}
