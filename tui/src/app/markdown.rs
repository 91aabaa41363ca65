//! Markdown to styled lines for the conversation pane: paragraphs,
//! headings, emphasis, inline code, fenced code blocks and (nested,
//! numbered) lists. Parsing is pulldown-cmark's; lines come out unwrapped
//! and `wrap` fits them to the pane.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use super::theme::Theme;

/// Builds lines as events arrive.
struct Builder {
    theme: Theme,
    lines: Vec<Line<'static>>,
    current: Vec<Span<'static>>,
    /// Inline styles open now (emphasis, strong, heading).
    styles: Vec<Style>,
    /// One entry per open list: the next number, or `None` for bullets.
    lists: Vec<Option<u64>>,
    in_code_block: bool,
}

impl Builder {
    fn style(&self) -> Style {
        self.styles
            .iter()
            .fold(Style::new(), |acc, s| acc.patch(*s))
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.lines
                .push(Line::from(std::mem::take(&mut self.current)));
        }
    }

    fn blank(&mut self) {
        self.flush();
        if self.lines.last().is_some_and(|l| l.width() > 0) {
            self.lines.push(Line::default());
        }
    }

    fn text(&mut self, text: &str) {
        if self.in_code_block {
            let indent = "  ".repeat(self.lists.len());
            for line in text.lines() {
                self.lines.push(Line::from(vec![
                    Span::raw(format!("{indent}  ")),
                    Span::styled(line.to_owned(), self.theme.code()),
                ]));
            }
            return;
        }
        let style = self.style();
        self.current.push(Span::styled(text.to_owned(), style));
    }
}

/// Renders `source` as lines, one per paragraph line, list item or code
/// line.
pub fn render(source: &str, theme: Theme) -> Vec<Line<'static>> {
    let mut b = Builder {
        theme,
        lines: Vec::new(),
        current: Vec::new(),
        styles: Vec::new(),
        lists: Vec::new(),
        in_code_block: false,
    };
    for event in Parser::new_ext(source, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(Tag::Paragraph) => {}
            Event::End(TagEnd::Paragraph) => {
                b.flush();
                if b.lists.is_empty() {
                    b.blank();
                }
            }
            Event::Start(Tag::Heading { .. }) => {
                b.blank();
                b.styles
                    .push(theme.bold().add_modifier(Modifier::UNDERLINED));
            }
            Event::End(TagEnd::Heading(_)) => {
                b.styles.pop();
                b.flush();
            }
            Event::Start(Tag::Emphasis) => {
                b.styles.push(Style::new().add_modifier(Modifier::ITALIC))
            }
            Event::Start(Tag::Strong) => b.styles.push(theme.bold()),
            Event::Start(Tag::Strikethrough) => b
                .styles
                .push(Style::new().add_modifier(Modifier::CROSSED_OUT)),
            Event::End(TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough) => {
                b.styles.pop();
            }
            Event::Start(Tag::CodeBlock(_)) => {
                b.flush();
                b.in_code_block = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                b.in_code_block = false;
                b.blank();
            }
            Event::Start(Tag::List(first)) => {
                b.flush();
                b.lists.push(first);
            }
            Event::End(TagEnd::List(_)) => {
                b.lists.pop();
                if b.lists.is_empty() {
                    b.blank();
                }
            }
            Event::Start(Tag::Item) => {
                b.flush();
                let depth = b.lists.len().saturating_sub(1);
                let marker = match b.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n += 1;
                        m
                    }
                    _ => "• ".to_owned(),
                };
                b.current
                    .push(Span::raw(format!("{}{marker}", "  ".repeat(depth))));
            }
            Event::End(TagEnd::Item) => b.flush(),
            Event::Code(code) => {
                let style = b.style().patch(theme.code());
                b.current.push(Span::styled(code.into_string(), style));
            }
            Event::Text(text) => b.text(&text),
            Event::SoftBreak => b.text(" "),
            Event::HardBreak => b.flush(),
            Event::Rule => {
                b.flush();
                b.lines.push(Line::styled("────────", theme.dim()));
            }
            _ => {}
        }
    }
    b.flush();
    while b.lines.last().is_some_and(|l| l.width() == 0) {
        b.lines.pop();
    }
    b.lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn lists_code_and_emphasis() {
        let md = "Some *emph* and **bold** `code`.\n\n- one\n- two\n  1. a\n  2. b\n\n```\nfn x() {}\n```\n";
        let lines = render(md, Theme { color: true });
        assert_eq!(
            plain(&lines),
            vec![
                "Some emph and bold code.",
                "",
                "• one",
                "• two",
                "  1. a",
                "  2. b",
                "",
                "  fn x() {}",
            ]
        );
        let emph = &lines[0].spans[1];
        assert!(emph.style.add_modifier.contains(Modifier::ITALIC));
        let bold = &lines[0].spans[3];
        assert!(bold.style.add_modifier.contains(Modifier::BOLD));
    }
}
