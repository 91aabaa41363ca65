//! Where an MCP server's own code lives, so that `untrusted` (which reads
//! only the system and declared roots) can still load it.

use std::path::{Path, PathBuf};

/// Directories the server's own code lives in, which `untrusted` must let
/// it read: the program's, and for each script argument its package (for
/// node, the outermost `node_modules` above it, where its dependencies are).
pub fn install_dirs(command: &[String]) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut dirs = Vec::new();
    for (i, arg) in command.iter().enumerate() {
        let path = if i == 0 && !arg.contains('/') {
            which(arg)
        } else {
            Some(PathBuf::from(arg))
        };
        let Some(path) = path
            .and_then(|p| p.canonicalize().ok())
            .filter(|p| p.is_file())
        else {
            continue;
        };
        let dir = outermost_node_modules(&path).or_else(|| path.parent().map(Path::to_path_buf));
        // A script straight in `/` or `$HOME` grants just itself, not all
        // of its directory.
        match dir {
            Some(d) if d != Path::new("/") && Some(&d) != home.as_ref() => dirs.push(d),
            _ => dirs.push(path),
        }
    }
    dirs
}

fn outermost_node_modules(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == "node_modules"))
        .last()
        .map(Path::to_path_buf)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
