//! The rewrite itself: find each client's server entries and put every
//! stdio one behind `bulkhead mcp wrap`, changing only its `command` and
//! `args`. JSON is edited as text at the byte spans [`super::jsonc`]
//! found; TOML through `toml_edit`, which keeps comments and layout.

use std::ops::Range;
use std::path::Path;

use toml_edit::{DocumentMut, Item, TableLike, Value};

use super::jsonc::{self, Node};

/// What to put in front of each server.
pub struct Wrapper<'a> {
    /// The `bulkhead` to run: an absolute path or a name on PATH.
    pub command: &'a str,
    /// Flags for `mcp wrap`, placed before its `--`.
    pub flags: &'a [String],
    /// Why `mcp wrap` could not run this server's command line, if it
    /// could not (`docker run`): such an entry is left as it is, since
    /// wrapping it would only break it.
    pub refuse: &'a dyn Fn(&[String]) -> Option<String>,
}

impl Wrapper<'_> {
    /// The new `args` for a server run as `command args…`.
    fn args(&self, command: &str, args: &[String]) -> Vec<String> {
        let mut out = vec!["mcp".to_owned(), "wrap".to_owned()];
        out.extend(self.flags.iter().cloned());
        out.push("--".to_owned());
        out.push(command.to_owned());
        out.extend(args.iter().cloned());
        out
    }

    /// Whether `command` is bulkhead already: wrapped, or bulkhead's own
    /// `mcp serve`. Either way wrapping it again would nest two proxies.
    fn is_bulkhead(&self, command: &str) -> bool {
        command == self.command
            || Path::new(command)
                .file_name()
                .is_some_and(|n| n == "bulkhead")
    }
}

fn refused(wrapper: &Wrapper, command: &str, args: &[String]) -> Option<String> {
    let mut argv = vec![command.to_owned()];
    argv.extend(args.iter().cloned());
    (wrapper.refuse)(&argv)
}

/// What happened to one server entry.
pub enum Outcome {
    /// Wrapped: the argv before and after.
    Wrapped {
        before: Vec<String>,
        after: Vec<String>,
    },
    /// Left as it was, and why.
    Kept(String),
}

pub struct Rewrite {
    pub text: String,
    /// Every server entry seen, by name, in file order.
    pub servers: Vec<(String, Outcome)>,
}

/// A file that did not parse: where and why.
#[derive(Debug)]
pub struct BadFile {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a server is not stdio, from its `type` and `url`, if it is not.
fn remote(kind: Option<&str>, has_url: bool) -> bool {
    has_url
        || matches!(
            kind,
            Some("http" | "sse" | "streamable-http" | "streamableHttp")
        )
}

/// Rewrites a JSON (or JSONC) config. `paths` name the server maps by
/// key, `*` standing for every member (Claude Code keeps one map per
/// project under `projects`).
pub fn json(text: &str, paths: &[&[&str]], wrapper: &Wrapper) -> Result<Rewrite, BadFile> {
    let root = jsonc::parse(text).map_err(|e| BadFile {
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let mut maps = Vec::new();
    for path in paths {
        collect(&root, path, &mut maps);
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut servers = Vec::new();
    for map in maps {
        let Node::Object(members, _) = map else {
            continue;
        };
        for (name, _, entry) in members {
            let outcome = json_entry(text, entry, wrapper, &mut edits);
            servers.push((name.clone(), outcome));
        }
    }
    // Applied from the end so earlier spans stay valid.
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_owned();
    for (range, new) in edits {
        out.replace_range(range, &new);
    }
    Ok(Rewrite { text: out, servers })
}

fn collect<'a>(node: &'a Node, path: &[&str], out: &mut Vec<&'a Node>) {
    let Some((first, rest)) = path.split_first() else {
        out.push(node);
        return;
    };
    match (node, *first) {
        (Node::Object(members, _), "*") => {
            for (_, _, v) in members {
                collect(v, rest, out);
            }
        }
        _ => {
            if let Some(v) = node.get(first) {
                collect(v, rest, out);
            }
        }
    }
}

fn json_string(s: &str) -> String {
    // Serializing a &str cannot fail; the fallback keeps this total.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn json_entry(
    text: &str,
    entry: &Node,
    wrapper: &Wrapper,
    edits: &mut Vec<(Range<usize>, String)>,
) -> Outcome {
    if !matches!(entry, Node::Object(..)) {
        return Outcome::Kept("not an object".into());
    }
    let has_url = ["url", "serverUrl", "httpUrl"]
        .iter()
        .any(|k| entry.get(k).is_some());
    if remote(entry.get("type").and_then(Node::as_str), has_url) {
        return Outcome::Kept("remote".into());
    }
    let Some((_, key_span, command_node)) = entry.member("command") else {
        return Outcome::Kept("no command".into());
    };
    let Some(command) = command_node.as_str() else {
        return Outcome::Kept("command is not a string".into());
    };
    if wrapper.is_bulkhead(command) {
        return Outcome::Kept("already behind bulkhead".into());
    }
    let args_node = entry.get("args");
    let args: Vec<String> = match args_node {
        None => Vec::new(),
        Some(Node::Array(items, _)) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            match strings {
                Some(s) => s,
                None => return Outcome::Kept("args are not all strings".into()),
            }
        }
        Some(_) => return Outcome::Kept("args is not a list".into()),
    };
    if let Some(why) = refused(wrapper, command, &args) {
        return Outcome::Kept(why);
    }
    let after = wrapper.args(command, &args);
    let prefix: Vec<String> = after[..after.len() - args.len()]
        .iter()
        .map(|s| json_string(s))
        .collect();
    let command_span = command_node.span();
    match args_node {
        Some(Node::Array(items, span)) => {
            if let Some(first) = items.first() {
                // Follow the array's own layout: one item a line if its
                // first item is on a line of its own, else inline.
                let gap = &text[span.start + 1..first.span().start];
                let insert = if gap.contains('\n') {
                    prefix.iter().map(|p| format!("{p},{gap}")).collect()
                } else {
                    prefix.iter().map(|p| format!("{p}, ")).collect::<String>()
                };
                let at = first.span().start;
                edits.push((at..at, insert));
            } else {
                let at = span.start + 1;
                edits.push((at..at, prefix.join(", ")));
            }
            edits.push((command_span, json_string(wrapper.command)));
        }
        _ => {
            // No `args`: add one after `command`, indented like it.
            let before_key = &text[..key_span.start];
            let trimmed = before_key.trim_end_matches([' ', '\t', '\n', '\r']);
            let indent = match &before_key[trimmed.len()..] {
                "" => " ",
                ws => ws,
            };
            let new = format!(
                "{},{indent}\"args\": [{}]",
                json_string(wrapper.command),
                prefix.join(", ")
            );
            edits.push((command_span, new));
        }
    }
    let mut before = vec![command.to_owned()];
    before.extend(args);
    let mut full = vec![wrapper.command.to_owned()];
    full.extend(after);
    Outcome::Wrapped {
        before,
        after: full,
    }
}

/// Rewrites a Codex `config.toml`: each `[mcp_servers.NAME]` table (or
/// inline table) with a `command`.
pub fn toml(text: &str, table: &str, wrapper: &Wrapper) -> Result<Rewrite, BadFile> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, column) = e.span().map_or((1, 1), |s| jsonc::line_col(text, s.start));
        BadFile {
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })?;
    let mut servers = Vec::new();
    if let Some(map) = doc.get_mut(table).and_then(Item::as_table_like_mut) {
        for (name, item) in map.iter_mut() {
            let inline = item.is_inline_table();
            let outcome = match item.as_table_like_mut() {
                Some(entry) => toml_entry(entry, inline, wrapper),
                None => Outcome::Kept("not a table".into()),
            };
            servers.push((name.get().to_owned(), outcome));
        }
    }
    Ok(Rewrite {
        text: doc.to_string(),
        servers,
    })
}

fn toml_entry(entry: &mut dyn TableLike, inline: bool, wrapper: &Wrapper) -> Outcome {
    let kind = entry.get("type").and_then(Item::as_str);
    if remote(kind, entry.contains_key("url")) {
        return Outcome::Kept("remote".into());
    }
    let Some(command) = entry
        .get("command")
        .and_then(Item::as_str)
        .map(str::to_owned)
    else {
        return Outcome::Kept(
            if entry.contains_key("command") {
                "command is not a string"
            } else {
                "no command"
            }
            .into(),
        );
    };
    if wrapper.is_bulkhead(&command) {
        return Outcome::Kept("already behind bulkhead".into());
    }
    let args: Vec<String> = match entry.get("args") {
        None => Vec::new(),
        Some(item) => {
            let Some(array) = item.as_array() else {
                return Outcome::Kept("args is not a list".into());
            };
            let strings: Option<Vec<String>> = array
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            match strings {
                Some(s) => s,
                None => return Outcome::Kept("args are not all strings".into()),
            }
        }
    };
    if let Some(why) = refused(wrapper, &command, &args) {
        return Outcome::Kept(why);
    }
    let after = wrapper.args(&command, &args);
    let prefix = &after[..after.len() - args.len()];
    if let Some(Item::Value(v)) = entry.get_mut("command") {
        // The decor holds the spaces around the value and a trailing
        // comment on its line; the new value keeps both.
        let decor = v.decor().clone();
        *v = Value::from(wrapper.command);
        *v.decor_mut() = decor;
    }
    match entry.get_mut("args").and_then(Item::as_array_mut) {
        Some(array) => {
            let first_prefix = array
                .get(0)
                .and_then(|v| v.decor().prefix())
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_owned();
            let multiline = first_prefix.contains('\n');
            // Inline: the old first item now follows a comma.
            if let Some(old) = array.get_mut(0).filter(|_| !multiline) {
                old.decor_mut().set_prefix(" ");
            }
            for (i, arg) in prefix.iter().enumerate() {
                let mut v = Value::from(arg.as_str());
                let p = if multiline || i == 0 {
                    first_prefix.as_str()
                } else {
                    " "
                };
                v.decor_mut().set_prefix(p);
                v.decor_mut().set_suffix("");
                array.insert(i, v);
            }
        }
        None => {
            let mut array = Value::Array(prefix.iter().map(String::as_str).collect());
            // In `{ command = "x" }` the space before `}` is the command
            // value's suffix; it goes with the new last value, `args`.
            if let (true, Some(Item::Value(v))) = (inline, entry.get_mut("command")) {
                let suffix = v.decor().suffix().cloned();
                v.decor_mut().set_suffix("");
                if let Some(suffix) = suffix {
                    array.decor_mut().set_suffix(suffix);
                }
            }
            entry.insert("args", Item::Value(array));
        }
    }
    let mut before = vec![command];
    before.extend(args);
    let mut full = vec![wrapper.command.to_owned()];
    full.extend(after);
    Outcome::Wrapped {
        before,
        after: full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapper() -> Wrapper<'static> {
        Wrapper {
            command: "bulkhead",
            flags: &[],
            refuse: &|_| None,
        }
    }

    #[test]
    fn toml_inline_and_dotted_entries() {
        let text = "[mcp_servers]\n\
                    a = { command = \"npx\", args = [\"pkg\"] }  # inline\n\
                    b = { command = \"/bin/srv\" }\n";
        let out = toml(text, "mcp_servers", &wrapper()).unwrap().text;
        assert_eq!(
            out,
            "[mcp_servers]\n\
             a = { command = \"bulkhead\", args = [\"mcp\", \"wrap\", \"--\", \"npx\", \"pkg\"] }  # inline\n\
             b = { command = \"bulkhead\", args = [\"mcp\", \"wrap\", \"--\", \"/bin/srv\"] }\n"
        );
        let text = "mcp_servers.d.command = \"uvx\"\n";
        let out = toml(text, "mcp_servers", &wrapper()).unwrap().text;
        assert_eq!(
            out,
            "mcp_servers.d.command = \"bulkhead\"\n\
             mcp_servers.d.args = [\"mcp\", \"wrap\", \"--\", \"uvx\"]\n"
        );
    }

    #[test]
    fn json_without_args_gets_them_after_command() {
        let text = "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}}";
        let out = json(text, &[&["mcpServers"]], &wrapper()).unwrap().text;
        assert_eq!(
            out,
            "{\"mcpServers\": {\"a\": {\"command\": \"bulkhead\", \"args\": [\"mcp\", \"wrap\", \"--\", \"x\"]}}}"
        );
    }

    #[test]
    fn refused_commands_are_kept() {
        let w = Wrapper {
            command: "bulkhead",
            flags: &[],
            refuse: &|argv| (argv[0] == "docker").then(|| "container".to_owned()),
        };
        let text = "{\"mcpServers\": {\"d\": {\"command\": \"docker\", \"args\": [\"run\"]}}}";
        let r = json(text, &[&["mcpServers"]], &w).unwrap();
        assert_eq!(r.text, text);
        assert!(matches!(&r.servers[0].1, Outcome::Kept(why) if why == "container"));
    }
}
