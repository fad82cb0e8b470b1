//! Problems found in a workflow file, each tied to a place in it.
//!
//! Every check in the loader pushes a [`Diagnostic`] instead of stopping, so
//! one `baton validate` shows every mistake at once. Rendering draws the
//! offending line with a caret under the spot, the way a compiler does.

use std::fmt;
use std::path::{Path, PathBuf};

/// A line and column in a file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One problem in one workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub pos: Option<Pos>,
    pub step: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            pos: None,
            step: None,
            help: None,
        }
    }

    pub fn at(mut self, pos: Option<Pos>) -> Self {
        self.pos = pos;
        self
    }

    pub fn step(mut self, step: &str) -> Self {
        self.step = Some(step.to_owned());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one file, with the text needed to show them.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: PathBuf,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_one(f, &self.path, &self.source, diagnostic)?;
        }
        Ok(())
    }
}

fn write_one(
    f: &mut fmt::Formatter<'_>,
    path: &Path,
    source: &str,
    diagnostic: &Diagnostic,
) -> fmt::Result {
    write!(f, "error: {}", diagnostic.message)?;
    if let Some(step) = &diagnostic.step {
        write!(f, " (step `{step}`)")?;
    }
    writeln!(f)?;
    match diagnostic.pos {
        Some(pos) => {
            writeln!(f, "  --> {}:{}:{}", path.display(), pos.line, pos.column)?;
            if let Some(text) = source.lines().nth(pos.line.saturating_sub(1)) {
                let number = pos.line.to_string();
                let pad = " ".repeat(number.len());
                let (text, caret_at) = excerpt(text.trim_end(), pos.column);
                writeln!(f, "{pad} |")?;
                writeln!(f, "{number} | {text}")?;
                writeln!(f, "{pad} | {caret_at}^")?;
            }
        }
        None => writeln!(f, "  --> {}", path.display())?,
    }
    if let Some(help) = &diagnostic.help {
        writeln!(f, "  = help: {help}")?;
    }
    Ok(())
}

/// The most characters of a source line drawn under a diagnostic; a longer
/// line (a minified file, a long template) is cut around the column.
const MAX_SHOWN: usize = 200;

/// The part of `line` to draw, and the run of blanks that puts a caret
/// under `column`. Tabs are kept in the blanks so the caret lines up.
fn excerpt(line: &str, column: usize) -> (String, String) {
    let count = line.chars().count();
    let caret = column.saturating_sub(1).min(count);
    let start = match count > MAX_SHOWN {
        true => caret.saturating_sub(MAX_SHOWN / 2).min(count - MAX_SHOWN),
        false => 0,
    };
    let end = (start + MAX_SHOWN).min(count);
    let mut text = String::new();
    let mut blanks = String::new();
    if start > 0 {
        text.push('…');
        blanks.push(' ');
    }
    for (i, c) in line.chars().enumerate().skip(start).take(end - start) {
        text.push(c);
        if i < caret {
            blanks.push(if c == '\t' { '\t' } else { ' ' });
        }
    }
    if end < count {
        text.push('…');
    }
    (text, blanks)
}

/// The closest of `candidates` to `word`, when it is close enough to be a
/// likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(word, c), c))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_column() {
        let report = Report {
            path: "w.yaml".into(),
            source: "steps:\n  a:\n    agnet: x\n".into(),
            diagnostics: vec![Diagnostic::new("unknown key `agnet`")
                .at(Some(Pos { line: 3, column: 5 }))
                .step("a")
                .help("did you mean `agent`?")],
        };
        let text = report.render();
        assert!(text.contains("w.yaml:3:5"), "{text}");
        assert!(text.contains("3 |     agnet: x\n  |     ^"), "{text}");
        assert!(text.contains("(step `a`)"), "{text}");
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(1000), "b".repeat(1000));
        let (text, blanks) = excerpt(&line, 1001);
        assert_eq!(text.chars().count(), MAX_SHOWN + 2, "{text}");
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert_eq!(text.chars().nth(blanks.chars().count()), Some('X'));

        let (text, blanks) = excerpt(&line, 3);
        assert!(text.starts_with("aaa") && text.ends_with('…'), "{text}");
        assert_eq!(blanks, "  ");
        let (text, blanks) = excerpt(&line, 2001);
        assert!(text.starts_with('…') && text.ends_with('b'), "{text}");
        assert_eq!(text.chars().nth(blanks.chars().count()), Some('b'));
        assert_eq!(blanks.chars().count(), MAX_SHOWN);

        let (text, blanks) = excerpt("\tab", 3);
        assert_eq!((text.as_str(), blanks.as_str()), ("\tab", "\t "));
    }

    #[test]
    fn suggests_only_close_words() {
        assert_eq!(did_you_mean("agnet", ["agent", "run"]), Some("agent"));
        assert_eq!(did_you_mean("zzz", ["agent", "run"]), None);
        assert_eq!(did_you_mean("nothere", ["neither", "search"]), None);
        assert_eq!(did_you_mean("serch", ["neither", "search"]), Some("search"));
    }
}
