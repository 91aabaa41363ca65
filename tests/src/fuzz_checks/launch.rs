//! What a package registry and a fetched package say about themselves:
//! the version a registry resolves (`npm view`'s JSON, `uv pip compile`'s
//! lines, pip's report; `parse_resolved_version`) and an installed npm
//! package's `package.json` (`installed_bin`, `installed_version`). Both
//! come from the network or the package's author. Any bytes give a typed
//! error or a name that is safe as one path component.

use std::path::Path;

use bulkhead_launch::{
    LaunchEnv, PackageRef, analyze, installed_bin, installed_version, parse_resolved_version,
};

use super::Params;
use super::config::scratch_file;

/// The launcher command lines whose packages the input's bytes are said to
/// describe: each installer, and a scoped npm name.
const COMMANDS: &[&[&str]] = &[
    &["npx", "-y", "@scope/server-x"],
    &["npx", "-y", "server-x@^1"],
    &["uvx", "mcp-server-x"],
    &["pipx", "run", "mcp-server-x"],
];

fn package(which: u8, cwd: &Path) -> PackageRef {
    let command = COMMANDS[usize::from(which) % COMMANDS.len()];
    let argv: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
    let env = LaunchEnv {
        cwd: cwd.to_path_buf(),
        ..LaunchEnv::default()
    };
    match analyze(&argv, &env) {
        Ok(plan) => plan
            .package
            .unwrap_or_else(|| panic!("{command:?} names no package")),
        Err(e) => panic!("{command:?} does not analyze: {e}"),
    }
}

/// A version or an executable that can be joined to a directory without
/// leaving it.
fn one_component(s: &str, what: &str) {
    assert!(
        !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']),
        "{what} {s:?} is not one path component"
    );
}

pub fn registry(data: &[u8]) {
    let mut p = Params::new(data);
    let which = p.u8();
    let bytes = p.rest();
    let text = String::from_utf8_lossy(bytes);
    // The package.json goes where the fetch would have put it.
    let json = scratch_file("package.json", bytes);
    let scratch = json.parent().expect("the scratch directory").to_path_buf();
    let pkg = package(which, &scratch);

    if let Ok(version) = parse_resolved_version(&pkg, &text) {
        one_component(&version, "a resolved version");
        assert!(version.len() <= 256, "a {}-byte version", version.len());
    }

    let dir = scratch.join("install");
    let manifest = dir
        .join("node_modules")
        .join(&pkg.package.name)
        .join("package.json");
    if let Some(parent) = manifest.parent() {
        std::fs::create_dir_all(parent).expect("the package's directory");
    }
    std::fs::write(&manifest, bytes).expect("writing the package.json");
    if let Ok(bin) = installed_bin(&pkg, &dir) {
        one_component(&bin, "an executable");
    }
    if let Ok(version) = installed_version(&pkg, &dir) {
        // It names the pinned version's file, so it must stay inside.
        one_component(&version, "an installed version");
    }
}
