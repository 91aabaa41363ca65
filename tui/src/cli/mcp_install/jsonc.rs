//! A JSON reader that keeps byte positions, so `mcp install` can change a
//! server's `command` and `args` in place and leave every other byte of
//! the client's file as it was: its indentation, key order, blank lines
//! and, in JSONC files (VS Code's `mcp.json`, Claude Code's settings),
//! comments and trailing commas. A serde round trip would re-indent the
//! whole file and, without `preserve_order` (not enabled in this
//! workspace), sort its keys.

use std::ops::Range;

/// A parsed value and where it is in the text.
#[derive(Debug)]
pub enum Node {
    /// Members in file order: key, the key's span (quotes included), value.
    Object(Vec<(String, Range<usize>, Node)>, Range<usize>),
    Array(Vec<Node>, Range<usize>),
    String(String, Range<usize>),
    /// A number, `true`, `false` or `null`: never rewritten, only skipped.
    Scalar(Range<usize>),
}

impl Node {
    pub fn span(&self) -> Range<usize> {
        match self {
            Node::Object(_, s) | Node::Array(_, s) | Node::String(_, s) | Node::Scalar(s) => {
                s.clone()
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.member(key).map(|(_, _, v)| v)
    }

    pub fn member(&self, key: &str) -> Option<&(String, Range<usize>, Node)> {
        match self {
            Node::Object(members, _) => members.iter().find(|(k, _, _)| k == key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s, _) => Some(s),
            _ => None,
        }
    }
}

/// Where a parse failed, 1-based, and why.
#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses `text` as JSON with `//` and `/* */` comments and trailing
/// commas allowed (what VS Code and ToolHive's hujson accept).
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut p = Parser { text, pos: 0 };
    p.skip_ws()?;
    let node = p.value(0)?;
    p.skip_ws()?;
    if p.pos < text.len() {
        return Err(p.error("unexpected text after the top-level value"));
    }
    Ok(node)
}

/// Line and column (1-based, in characters) of byte offset `pos`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    // An offset from a parser's report may fall inside a character.
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Nesting deeper than this is refused rather than recursed into, so a
/// hostile file cannot overflow the stack.
const MAX_DEPTH: usize = 256;

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> ParseError {
        let (line, column) = line_col(self.text, self.pos);
        ParseError {
            line,
            column,
            message: message.to_owned(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> Result<(), ParseError> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'/' if bytes.get(self.pos + 1) == Some(&b'/') => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b'/' if bytes.get(self.pos + 1) == Some(&b'*') => {
                    let Some(end) = self.text[self.pos + 2..].find("*/") else {
                        return Err(self.error("unterminated /* comment"));
                    };
                    self.pos += 2 + end + 2;
                }
                // A byte-order mark is whitespace to VS Code.
                0xEF if self.text[self.pos..].starts_with('\u{feff}') => self.pos += 3,
                _ => break,
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Node, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let (s, span) = self.string()?;
                Ok(Node::String(s, span))
            }
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => self.scalar(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of file, expected a value")),
        }
    }

    fn scalar(&mut self) -> Result<Node, ParseError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
        {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        let ok = matches!(word, "true" | "false" | "null")
            || serde_json::from_str::<serde_json::Number>(word).is_ok();
        if !ok {
            self.pos = start;
            return Err(self.error(&format!("not a JSON value: {word:?}")));
        }
        Ok(Node::Scalar(start..self.pos))
    }

    /// A string, decoded by serde_json once its end is found, so escapes
    /// (`\u` surrogate pairs included) follow the standard exactly.
    fn string(&mut self) -> Result<(String, Range<usize>), ParseError> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        loop {
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => i += 2,
                Some(b'\n') | None => {
                    return Err(self.error("unterminated string"));
                }
                Some(_) => i += 1,
            }
        }
        let span = start..i + 1;
        match serde_json::from_str::<String>(&self.text[span.clone()]) {
            Ok(s) => {
                self.pos = i + 1;
                Ok((s, span))
            }
            Err(e) => {
                // serde's column counts from the string's opening quote.
                self.pos = start + e.column().saturating_sub(1);
                // serde's own "at line 1 column N" counts within the
                // string; the position reported is the file's.
                let why = e.to_string();
                let why = why.split(" at line ").next().unwrap_or(&why);
                Err(self.error(&format!("bad string: {why}")))
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut members = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                Some(b'}') => break,
                Some(b'"') => {}
                _ => return Err(self.error("expected a key in quotes or '}'")),
            }
            let (key, key_span) = self.string()?;
            self.skip_ws()?;
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':' after the key"));
            }
            self.pos += 1;
            self.skip_ws()?;
            let value = self.value(depth + 1)?;
            members.push((key, key_span, value));
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
        self.pos += 1;
        Ok(Node::Object(members, start..self.pos))
    }

    fn array(&mut self, depth: usize) -> Result<Node, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            if self.peek() == Some(b']') {
                break;
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
        self.pos += 1;
        Ok(Node::Array(items, start..self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_the_values() {
        let text = "{ // c\n \"a\": [1, \"x\",], /* d */ \"b\": {\"c\": null},\n}";
        let node = parse(text).unwrap();
        let a = node.get("a").unwrap();
        assert_eq!(&text[a.span()], "[1, \"x\",]");
        let b = node.get("b").unwrap().get("c").unwrap();
        assert_eq!(&text[b.span()], "null");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("{\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 3), "{e:?}");
        let e = parse("{\"a\": \"\\q\"}").unwrap_err();
        assert_eq!(e.line, 1, "{e:?}");
    }
}
