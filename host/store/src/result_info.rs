//! A tool result's metadata as the store lists it: its state and figures,
//! never its output. Items carry it (a page of items shows each result's
//! state) and payload reads return it with the output, so it sits below
//! both.

use rusqlite::Row;

/// Where a tool result is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultState {
    /// Its writer has not finished it (or died: `gc` then marks it
    /// interrupted).
    Running,
    Finished,
    /// Its writer died before finishing; the chunks it committed are kept.
    Interrupted,
}

impl ResultState {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultState::Running => "running",
            ResultState::Finished => "finished",
            ResultState::Interrupted => "interrupted",
        }
    }
}

/// A tool result's metadata (never its output).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResultInfo {
    pub state: ResultState,
    pub tool: String,
    /// The model's id for the call this answers, if any.
    pub call_ref: Option<String>,
    pub args_json: String,
    /// completed, truncated, killed or failed (once finished).
    pub status: Option<String>,
    pub outcome_json: Option<String>,
    pub usage_json: Option<String>,
    pub enforcement_json: Option<String>,
    /// What the tool produced, kept or not.
    pub bytes_seen: u64,
    pub lines_seen: u64,
    /// Where the kept head ends and the kept tail starts, if output was cut.
    pub cut_offset: Option<u64>,
    /// Bytes left out at `cut_offset`.
    pub cut_bytes: u64,
    /// Bytes the store refused past its own per-result cap.
    pub dropped_bytes: u64,
    /// When retention removed the output (then it reads as a stub).
    pub pruned_ms: Option<i64>,
    pub pruned_bytes: u64,
}

impl ResultInfo {
    /// The text a pruned result reads as, in place of its output.
    pub fn pruned_stub(&self) -> Option<String> {
        self.pruned_ms.map(|ms| {
            format!(
                "[output pruned by retention at {ms} ms since the epoch: {} bytes removed]",
                self.pruned_bytes
            )
        })
    }

    /// Reads the `r.*` columns of `ITEM_COLUMNS` starting at `at`; `None`
    /// when the item has no results row.
    pub(crate) fn from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<ResultInfo>> {
        let state: Option<String> = row.get(at)?;
        let Some(state) = state else { return Ok(None) };
        let state = match state.as_str() {
            "running" => ResultState::Running,
            "finished" => ResultState::Finished,
            _ => ResultState::Interrupted,
        };
        let u = |i: usize| row.get::<_, i64>(at + i).map(|v| v as u64);
        Ok(Some(ResultInfo {
            state,
            tool: row.get(at + 1)?,
            call_ref: row.get(at + 2)?,
            args_json: row.get(at + 3)?,
            status: row.get(at + 4)?,
            outcome_json: row.get(at + 5)?,
            usage_json: row.get(at + 6)?,
            enforcement_json: row.get(at + 7)?,
            bytes_seen: u(8)?,
            lines_seen: u(9)?,
            cut_offset: row.get::<_, Option<i64>>(at + 10)?.map(|v| v as u64),
            cut_bytes: u(11)?,
            dropped_bytes: u(12)?,
            pruned_ms: row.get(at + 13)?,
            pruned_bytes: u(14)?,
        }))
    }
}
