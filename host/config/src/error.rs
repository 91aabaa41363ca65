//! [`ConfigError`]: what is wrong with the configuration, and where.

use std::path::{Path, PathBuf};

use bulkhead_host::limits::LimitsError;
use bulkhead_host::policy::{PRESET_NAMES, PolicyError};
use bulkhead_host::units::UnitError;

/// What is wrong with bulkhead's configuration, and where.
///
/// A problem (a bad value, an undefined name, an unreadable file) is
/// wrapped in where it was found, outermost first: the file
/// ([`InConfigFile`](Self::InConfigFile),
/// [`InServersFile`](Self::InServersFile)), the line and column
/// ([`At`](Self::At)), the policy ([`InPolicy`](Self::InPolicy)) or the
/// MCP server ([`InServer`](Self::InServer)). The text reads the same way:
///
/// ```text
/// config file /home/me/.config/bulkhead/bulkhead.toml: policy "research": limits.memory: …
/// config file /home/me/.config/bulkhead/bulkhead.toml: line 12, column 9: [agents.coder] model = "ghost" is not a [models.NAME] table; the models are: local
/// server "fs": memory: …
/// ```
///
/// [`problem`](Self::problem), [`path`](Self::path) and
/// [`line`](Self::line) take the wrapping apart. The fields of a problem
/// name the table (as written, `[agents.coder]`), the key (as written,
/// with its dotted prefix: `limits.memory`) and the bad value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A problem in `bulkhead.toml` (the config file): every error of
    /// [`Config::load`](crate::Config::load) and
    /// [`Config::parse`](crate::Config::parse) is one of these.
    #[error("config file {}: {problem}", path.display())]
    InConfigFile {
        path: PathBuf,
        problem: Box<ConfigError>,
    },
    /// A problem in an `mcpServers` JSON file
    /// ([`load_servers_file`](crate::load_servers_file)).
    #[error("{}: {problem}", path.display())]
    InServersFile {
        path: PathBuf,
        problem: Box<ConfigError>,
    },
    /// Where in the file (1-based), when the TOML parser gave a span.
    #[error("line {line}, column {column}: {problem}")]
    At {
        line: usize,
        column: usize,
        problem: Box<ConfigError>,
    },
    /// A problem in `[policies.NAME]`.
    #[error("policy \"{policy}\": {problem}")]
    InPolicy {
        policy: String,
        problem: Box<ConfigError>,
    },
    /// A problem with one MCP server: its `mcpServers` entry or its
    /// `[servers.NAME]` table ([`specs`](crate::specs)).
    #[error("server \"{server}\": {problem}")]
    InServer {
        server: String,
        problem: Box<ConfigError>,
    },

    /// The file cannot be opened (missing, a directory, no permission).
    #[error("cannot open: {error}")]
    CannotOpen { error: std::io::Error },
    /// The file opened but reading it failed (not UTF-8, an I/O error).
    #[error("cannot read: {error}")]
    CannotRead { error: std::io::Error },
    /// The file is over its size cap ([`CONFIG_MAX_BYTES`](crate::CONFIG_MAX_BYTES),
    /// [`SERVERS_FILE_MAX_BYTES`](crate::servers::SERVERS_FILE_MAX_BYTES)):
    /// probably the wrong file.
    #[error("larger than {max} bytes; is this the right file?")]
    TooLarge { max: u64 },
    /// Not TOML, or a table of the wrong shape (an unknown key, a missing
    /// one, a value of the wrong type or not one of the allowed words). The
    /// message is the TOML parser's, which quotes the line.
    #[error("{message}")]
    Toml {
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// Not JSON, or an `mcpServers` entry of the wrong shape; `key` is the
    /// path to the value (`mcpServers.fs.command`).
    #[error("line {line} column {column}: at `{key}`: {message}")]
    Json {
        line: usize,
        column: usize,
        key: String,
        message: String,
    },

    /// A size or a duration that does not parse. `table` is named when the
    /// message names it (`[agents.coder]`); `key` is as written
    /// (`limits.memory`, `max_message`).
    #[error("{}{key}: {reason}", table.as_deref().map(|t| format!("{t} ")).unwrap_or_default())]
    BadValue {
        table: Option<String>,
        key: String,
        value: String,
        reason: UnitError,
    },
    /// A `[store]` size that is neither a size nor `"off"`.
    #[error("[store] {key} = \"{value}\": {reason} (a size like \"2GiB\", or \"off\")")]
    BadStoreSize {
        key: String,
        value: String,
        reason: UnitError,
    },
    /// A count or budget under its minimum (`max_turns = 0`,
    /// `result_budget = "12"`); `unit` is `""` or `" bytes"`.
    #[error("{table} {key} must be at least {min}{unit}")]
    TooSmall {
        table: String,
        key: String,
        value: u64,
        min: u64,
        unit: &'static str,
    },
    /// A model's `context_tokens` under the smallest useful budget.
    #[error("{table} {key} = {value} is below {min}")]
    BelowMinimum {
        table: String,
        key: String,
        value: u64,
        min: u64,
    },
    /// Two keys of which one table may set only one
    /// (`api_key_env` and `api_key`).
    #[error("{table}: set {first} or {second}, not both")]
    Conflict {
        table: String,
        first: &'static str,
        second: &'static str,
    },
    /// A limit that a table accepts elsewhere but that has no meaning for
    /// an MCP server (`timeout`, `output`); `instead` is the key that does.
    #[error(
        "[servers.{server}] {key} is not a limit of an MCP server, which lives as long as its \
         session; use {instead}"
    )]
    NotAServerLimit {
        server: String,
        key: &'static str,
        instead: &'static str,
    },
    /// The limits, once laid over the policy's, are not usable together
    /// (e.g. a memory cap too small to start a worker).
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// A path in a policy that is neither absolute nor `~/…`.
    #[error("path \"{path}\" must be absolute or start with ~/")]
    RelativePath { path: String },
    /// `worker = "…"` that is not an absolute path.
    #[error("worker = \"{}\" must be an absolute path", path.display())]
    RelativeWorker { path: PathBuf },
    /// `read`, `write` or `deny` on a policy whose base reads everything
    /// (`trusted`).
    #[error("read/write/deny need a restricted filesystem; extend \"untrusted\" or \"workspace\"")]
    NeedsRestrictedFilesystem,
    /// `extends = "NAME"` in `[policies.NAME]`, NAME not a preset.
    #[error("policy \"{policy}\" extends itself")]
    ExtendsItself { policy: String },
    /// `extends` names neither a preset nor a policy of the file.
    #[error(
        "policy \"{policy}\" extends \"{base}\", which is not defined; the presets are {}",
        PRESET_NAMES.join(", ")
    )]
    UndefinedBase { policy: String, base: String },
    /// The policies' `extends` go round in a circle.
    #[error("policy \"{policy}\" is part of an `extends` cycle")]
    ExtendsCycle { policy: String },
    /// A key that names a policy (`[defaults] tool_policy`, `[agents.NAME]
    /// policy`) names none.
    #[error("{table} {key} = \"{value}\" is not a defined policy")]
    UndefinedPolicy {
        table: String,
        key: String,
        value: String,
    },
    /// A `model = "…"` (in `[defaults]` or `[agents.NAME]`) that names no
    /// `[models.NAME]` table; `known` lists those there are.
    #[error("{table} model = \"{value}\" is not a [models.NAME] table; the models are: {known}")]
    UndefinedModel {
        table: String,
        value: String,
        known: String,
    },
    /// `[defaults] agent = "…"` that names no `[agents.NAME]` table.
    #[error(
        "[defaults] agent = \"{value}\" is not an [agents.NAME] table; the agents are: {known}"
    )]
    UndefinedAgent { value: String, known: String },
    /// An `mcpServers` entry with both `command` and `url`.
    #[error("has both `command` and `url`; give one")]
    CommandAndUrl,
    /// An `mcpServers` entry with neither `command` nor `url`.
    #[error("has neither `command` nor `url`")]
    NoCommandOrUrl,
    /// An `allow_net` entry that is not `HOST[:PORT]`.
    #[error("allow_net: {0}")]
    AllowNet(#[from] bulkhead_egress::AllowError),
    /// A remote server's `url` that names no host bulkhead can allow.
    #[error("url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// A policy that cannot be resolved into a sandbox (a path that cannot
    /// be made canonical, …).
    #[error(transparent)]
    Policy(#[from] PolicyError),

    /// [`Config::get`](crate::Config::get): no policy by that name.
    #[error("unknown policy \"{name}\"; the policies are: {known}")]
    UnknownPolicy { name: String, known: String },
    /// [`AgentSettings::agent`](crate::agents::AgentSettings::agent): no
    /// agent by that name.
    #[error("unknown agent \"{name}\"; the agents are: {known}")]
    UnknownAgent { name: String, known: String },
    /// [`AgentSettings::model`](crate::agents::AgentSettings::model): no
    /// model by that name.
    #[error("unknown model \"{name}\"; the models are: {known}")]
    UnknownModel { name: String, known: String },
}

impl ConfigError {
    /// The problem itself, without where it was found.
    pub fn problem(&self) -> &ConfigError {
        match self {
            Self::InConfigFile { problem, .. }
            | Self::InServersFile { problem, .. }
            | Self::At { problem, .. }
            | Self::InPolicy { problem, .. }
            | Self::InServer { problem, .. } => problem.problem(),
            other => other,
        }
    }

    /// The file the problem is in, if it was found in one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::InConfigFile { path, .. } | Self::InServersFile { path, .. } => Some(path),
            Self::At { problem, .. }
            | Self::InPolicy { problem, .. }
            | Self::InServer { problem, .. } => problem.path(),
            _ => None,
        }
    }

    /// The 1-based line of the file the problem is on, where it is known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::At { line, .. } | Self::Json { line, .. } => Some(*line),
            Self::Toml { line, .. } => *line,
            Self::InConfigFile { problem, .. }
            | Self::InServersFile { problem, .. }
            | Self::InPolicy { problem, .. }
            | Self::InServer { problem, .. } => problem.line(),
            _ => None,
        }
    }

    /// `self`, found in the config file at `path`.
    pub(crate) fn in_config_file(self, path: &Path) -> Self {
        Self::InConfigFile {
            path: path.to_path_buf(),
            problem: Box::new(self),
        }
    }

    /// `self`, found at byte `offset` of `text`.
    pub(crate) fn at(self, text: &str, offset: usize) -> Self {
        let (line, column) = line_col(text, offset);
        Self::At {
            line,
            column,
            problem: Box::new(self),
        }
    }

    /// A TOML parser's error, with its line and column when it has a span.
    pub(crate) fn toml(e: &toml::de::Error, text: &str) -> Self {
        let at = e.span().map(|s| line_col(text, s.start));
        Self::Toml {
            line: at.map(|(l, _)| l),
            column: at.map(|(_, c)| c),
            message: e.to_string(),
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
}

/// `names` as a list for a message: `a, b`, or `(none)`.
pub(crate) fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "(none)".into()
    } else {
        list.join(", ")
    }
}
