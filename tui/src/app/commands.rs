//! What a line typed at the prompt asks for. Direct mode maps each command
//! onto a built-in tool; the tool itself runs in a worker.

use bulkhead_faults::{FaultSpec, Target, VALID_FAULTS, VALID_TRIGGERS};
use serde_json::json;

/// One parsed prompt line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run a tool: its name, its JSON arguments, and the short form shown
    /// on the card.
    Tool {
        tool: &'static str,
        args: serde_json::Value,
        short: String,
    },
    /// `/limits`: show, or change for the calls that follow.
    Limits(Vec<(String, String)>),
    /// `/inject`: arm faults for the next call, show them, or disarm.
    Inject(Inject),
    Tools,
    Mcp,
    Sessions,
    Help,
    Quit,
    /// Text for a model; direct mode has none and says so.
    Prompt(String),
    /// A line that names no command, or a command used wrongly: the text
    /// says what is wrong and how to use it.
    Invalid(String),
}

/// What `/inject` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Inject {
    /// `/inject`: show what is armed.
    Show,
    /// `/inject off`: disarm.
    Off,
    /// `/inject SPEC…`: the next tool call runs with these faults.
    Arm(Vec<FaultSpec>),
}

/// The commands, for `/help` and the help overlay.
pub const HELP: &str = "\
- `!CMD` runs `CMD` with the **shell** tool
- `/search PATTERN [PATH]` searches file contents (ripgrep's engine)
- `/read PATH` reads a text file
- `/ls [PATH]` lists a directory
- `/limits [memory=SIZE] [output=SIZE] [timeout=DUR] [cpu=DUR]` shows or sets the next calls' limits
- `/inject FAULT[@TRIGGER]…` faults for the next call · `/inject off` disarms
- `/tools` lists the built-in tools
- `/mcp` shows the configured MCP servers
- `/sessions` lists the stored sessions
- `/help` shows this, `/quit` quits";

pub fn parse(line: &str) -> Command {
    let line = line.trim();
    if let Some(cmd) = line.strip_prefix('!') {
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Command::Invalid("`!` needs a command, e.g. `!ls -l`".into());
        }
        return Command::Tool {
            tool: "shell",
            args: json!({ "command": cmd }),
            short: cmd.to_owned(),
        };
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Prompt(line.to_owned());
    };
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    match name {
        "search" => search(args),
        "read" if args.is_empty() => Command::Invalid("usage: `/read PATH`".into()),
        "read" => Command::Tool {
            tool: "read_file",
            args: json!({ "path": args }),
            short: args.to_owned(),
        },
        "ls" => {
            let path = if args.is_empty() { "." } else { args };
            Command::Tool {
                tool: "list_directory",
                args: json!({ "path": path }),
                short: path.to_owned(),
            }
        }
        "limits" => limits(args),
        "inject" => inject(args),
        "tools" => Command::Tools,
        "mcp" => Command::Mcp,
        "sessions" => Command::Sessions,
        "help" => Command::Help,
        "quit" | "exit" => Command::Quit,
        other => Command::Invalid(format!("unknown command `/{other}`; `/help` lists them")),
    }
}

/// `/limits KEY=VALUE…`; the values are checked when applied.
fn limits(args: &str) -> Command {
    let mut pairs = Vec::new();
    for word in args.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else {
            return Command::Invalid(format!(
                "`/limits`: expected KEY=VALUE, got `{word}` (e.g. `/limits output=64M timeout=30s`)"
            ));
        };
        pairs.push((k.to_owned(), v.to_owned()));
    }
    Command::Limits(pairs)
}

/// `/inject [off | SPEC…]`. Every spec must parse and apply to a tool
/// call, or none is armed: the error names the bad one and lists what
/// would have been accepted.
fn inject(args: &str) -> Command {
    match args {
        "" => return Command::Inject(Inject::Show),
        "off" => return Command::Inject(Inject::Off),
        _ => {}
    }
    let mut specs = Vec::new();
    for word in args.split_whitespace() {
        let spec = match word.parse::<FaultSpec>() {
            Ok(spec) => spec,
            Err(e) => {
                // The parse error lists the faults or the triggers, as
                // fits what is wrong; the other list follows.
                let mut why = format!("`/inject {word}`: {e}");
                if !why.contains(VALID_FAULTS) {
                    why.push_str(&format!("; the faults are: {VALID_FAULTS}"));
                }
                if !why.contains(VALID_TRIGGERS) {
                    why.push_str(&format!("; the triggers are: {VALID_TRIGGERS}"));
                }
                why.push_str(
                    "\n\nusage: `/inject FAULT[:ARG][@TRIGGER]…` for the next call, \
                     `/inject` shows what is armed, `/inject off` disarms",
                );
                return Command::Invalid(why);
            }
        };
        if let Err(refused) = spec.check(Target::ToolCall) {
            return Command::Invalid(format!("`/inject {word}` is refused: {}", refused.reason));
        }
        specs.push(spec);
    }
    Command::Inject(Inject::Arm(specs))
}

/// `/search PATTERN [PATH]`: the path is the last word when there are two
/// or more, so a pattern with spaces needs a path after it.
fn search(args: &str) -> Command {
    if args.is_empty() {
        return Command::Invalid("usage: `/search PATTERN [PATH]`".into());
    }
    let (pattern, path) = match args.rsplit_once(char::is_whitespace) {
        Some((p, path)) => (p.trim(), path),
        None => (args, "."),
    };
    Command::Tool {
        tool: "search_files_content",
        args: json!({ "pattern": pattern, "path": path }),
        short: format!("{pattern} in {path}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bulkhead_faults::{Fault, Trigger};

    use super::*;

    #[test]
    fn bang_runs_the_shell() {
        let Command::Tool { tool, args, .. } = parse("!yes | head") else {
            panic!("not a tool call")
        };
        assert_eq!(tool, "shell");
        assert_eq!(args["command"], "yes | head");
    }

    #[test]
    fn search_takes_an_optional_path() {
        let Command::Tool { args, .. } = parse("/search needle /tmp/tree") else {
            panic!("not a tool call")
        };
        assert_eq!(args, json!({"pattern": "needle", "path": "/tmp/tree"}));
        let Command::Tool { args, .. } = parse("/search needle") else {
            panic!("not a tool call")
        };
        assert_eq!(args, json!({"pattern": "needle", "path": "."}));
    }

    #[test]
    fn inject_arms_shows_and_disarms() {
        assert_eq!(parse("/inject"), Command::Inject(Inject::Show));
        assert_eq!(parse("/inject   "), Command::Inject(Inject::Show));
        assert_eq!(parse("/inject off"), Command::Inject(Inject::Off));
        let Command::Inject(Inject::Arm(specs)) = parse("/inject kill@200ms  oom exit:3") else {
            panic!("not armed")
        };
        let written: Vec<String> = specs.iter().map(ToString::to_string).collect();
        assert_eq!(written, ["kill@200ms", "oom", "exit:3"]);
        assert_eq!(
            specs[0],
            FaultSpec::new(Fault::Kill).on(Trigger::After(Duration::from_millis(200)))
        );
        let Command::Inject(Inject::Arm(specs)) = parse("/inject hang@bytes:64K") else {
            panic!("not armed")
        };
        assert_eq!(specs[0].trigger, Trigger::Bytes(64 << 10));
    }

    #[test]
    fn a_bad_inject_names_the_bad_part_and_lists_the_valid_ones() {
        let Command::Invalid(why) = parse("/inject nosuch") else {
            panic!("accepted")
        };
        assert!(why.contains("\"nosuch\""), "{why}");
        assert!(
            why.contains(VALID_FAULTS) && why.contains(VALID_TRIGGERS),
            "{why}"
        );
        // One bad spec among good ones arms none and names the bad one.
        let Command::Invalid(why) = parse("/inject kill kill@soon") else {
            panic!("accepted")
        };
        assert!(
            why.contains("`/inject kill@soon`") && why.contains("\"@soon\""),
            "{why}"
        );
        let Command::Invalid(why) = parse("/inject exit:x") else {
            panic!("accepted")
        };
        assert!(why.contains("\"x\""), "{why}");
    }

    #[test]
    fn an_mcp_fault_is_refused_with_the_reason() {
        let Command::Invalid(why) = parse("/inject error@on:tools/call") else {
            panic!("accepted")
        };
        assert!(
            why.contains("refused") && why.contains("MCP fault"),
            "{why}"
        );
        assert!(why.contains("mcp wrap"), "{why}");
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(matches!(parse("/read"), Command::Invalid(m) if m.contains("/read PATH")));
        assert!(matches!(parse("/frob"), Command::Invalid(m) if m.contains("/frob")));
        assert!(matches!(parse("!"), Command::Invalid(_)));
        assert_eq!(parse("hello"), Command::Prompt("hello".into()));
        assert_eq!(parse("/ls"), parse("/ls ."));
    }
}
