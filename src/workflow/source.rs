//! Reading a workflow file: the size cap, YAML parsing, and where each key
//! and value sits in the text.
//!
//! serde_yaml gives the values but not their places, so a second pass over
//! the parser's marked events records the line and column of every mapping
//! key and value by path. The same pass finds duplicate keys, which would
//! otherwise hide a step by keeping only the last one.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, Scanner, Token, TokenType};

use crate::diagnostic::{Diagnostic, Pos};

/// The largest workflow file read, checked before reading.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Deepest nesting accepted; real workflows use four or five levels.
const MAX_DEPTH: usize = 64;

/// The most text aliases may add to the document, counting every scalar
/// they copy (plus one byte per node, so empty nodes count too). serde_yaml
/// caps how many aliases are expanded but not how large each one is.
pub const MAX_ALIAS_BYTES: u64 = 16 * 1024 * 1024;

/// Separates the keys of a path inside [`Spans`].
const SEP: char = '\u{1f}';

/// A parsed workflow file.
#[derive(Debug)]
pub struct Source {
    pub text: String,
    pub value: serde_yaml::Value,
    /// Positions, filled in by [`Source::locate`] only when there is a
    /// problem to point at: indexing costs as much as parsing.
    pub spans: Spans,
}

impl Source {
    /// Indexes the positions of every key and value.
    pub fn locate(&mut self) {
        if let Ok(spans) = Spans::index(&self.text) {
            self.spans = spans;
        }
    }
}

/// Reads the file at `path` within the size cap. Errors are diagnostics
/// without a position; `what` names the file in them (`workflow file`).
pub fn read_capped(path: &Path, what: &str) -> Result<String, Diagnostic> {
    let unreadable = |e: std::io::Error| Diagnostic::new(format!("cannot read {what}: {e}"));
    let too_large = || {
        Diagnostic::new(format!(
            "{what} is larger than {} MiB",
            MAX_FILE_BYTES / 1024 / 1024
        ))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        Diagnostic::new(format!(
            "{what} is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Parses YAML text, returning every problem found at this level.
///
/// A quick pass with yaml-rust2 runs first: it stops at the nesting limit,
/// while libyaml's scanner slows down quadratically with nesting depth.
/// Only a file with aliases is parsed a second time, to measure what they
/// expand to before serde_yaml copies them.
pub fn parse(mut text: String) -> Result<Source, (String, Vec<Diagnostic>)> {
    // Editors on Windows may start a file with a byte order mark; libyaml
    // would take it for the start of a second document. It is invisible,
    // so removing it keeps every line and column as the user sees them.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let checked = check_depth(&text).and_then(|has_aliases| match has_aliases {
        true => check_aliases(&text),
        false => Ok(()),
    });
    match checked {
        Ok(()) => {}
        Err(Stop::Refused(d)) => return Err((text, vec![d])),
        Err(Stop::Syntax(d)) => {
            // serde_yaml's words are the ones users meet elsewhere.
            let d = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
                Err(e) => yaml_error(&e),
                Ok(_) => d,
            };
            return Err((text, vec![d]));
        }
    }
    let error = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(value) => {
            let spans = Spans::default();
            return Ok(Source { text, value, spans });
        }
        Err(e) => e,
    };
    // serde_yaml stops at the first duplicate key; the index lists them all.
    let duplicates = Spans::index(&text)
        .map(|s| s.duplicates)
        .unwrap_or_default();
    match duplicates.is_empty() {
        true => Err((text, vec![yaml_error(&error)])),
        false => Err((text, duplicates)),
    }
}

/// Walks the YAML tokens only to refuse flow nesting (`[[[…`) past
/// [`MAX_DEPTH`], the kind that slows libyaml down; serde_yaml's own
/// recursion limit catches deep block nesting quickly. Returns whether the
/// text uses aliases.
fn check_depth(text: &str) -> Result<bool, Stop> {
    let mut scanner = Scanner::new(text.chars());
    let mut depth = 0usize;
    let mut has_aliases = false;
    loop {
        let Some(Token(mark, token)) = scanner.next_token().map_err(scan_error)? else {
            return Ok(has_aliases);
        };
        match token {
            TokenType::FlowSequenceStart | TokenType::FlowMappingStart => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Stop::Refused(too_deep(pos(&mark))));
                }
            }
            TokenType::FlowSequenceEnd | TokenType::FlowMappingEnd => {
                depth = depth.saturating_sub(1)
            }
            TokenType::Alias(_) => has_aliases = true,
            TokenType::StreamEnd => return Ok(has_aliases),
            _ => {}
        }
    }
}

/// Refuses aliases that would add more than [`MAX_ALIAS_BYTES`] to the
/// document. Each anchored node's expanded size is known when the node
/// ends, so an alias costs one lookup, however deeply aliases nest.
fn check_aliases(text: &str) -> Result<(), Stop> {
    let mut parser = Parser::new_from_str(text);
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    // Open mappings and sequences: anchor id (0 for none), size so far.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut added = 0u64;
    loop {
        let (event, mark) = parser.next_token().map_err(scan_error)?;
        let (anchor, size) = match event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(value, _, anchor, _) => (anchor, value.len() as u64 + 1),
            Event::Alias(id) => {
                let size = anchored.get(&id).copied().unwrap_or(1);
                added = added.saturating_add(size);
                if added > MAX_ALIAS_BYTES {
                    return Err(Stop::Refused(alias_bomb(pos(&mark))));
                }
                (0, size)
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                open.push((anchor, 1));
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => open.pop().unwrap_or((0, 1)),
            _ => continue,
        };
        if anchor != 0 {
            anchored.insert(anchor, size);
        }
        if let Some((_, parent)) = open.last_mut() {
            *parent = parent.saturating_add(size);
        }
    }
}

fn alias_bomb(at: Pos) -> Diagnostic {
    Diagnostic::new(format!(
        "YAML aliases expand to more than {} MiB",
        MAX_ALIAS_BYTES / 1024 / 1024
    ))
    .at(Some(at))
    .help("this alias takes the document past the limit; write the text out, or alias less of it")
}

fn scan_error(e: yaml_rust2::ScanError) -> Stop {
    let d = Diagnostic::new(format!("invalid YAML: {}", e.info())).at(Some(pos(e.marker())));
    if e.info().contains("recursion limit") {
        Stop::Refused(d.help("the file nests too deeply"))
    } else {
        Stop::Syntax(d)
    }
}

fn too_deep(at: Pos) -> Diagnostic {
    Diagnostic::new(format!("YAML nests deeper than {MAX_DEPTH} levels")).at(Some(at))
}

/// Why a check stopped early.
enum Stop {
    /// The text is not YAML; serde_yaml may word the problem better.
    Syntax(Diagnostic),
    /// The text is refused before serde_yaml sees it.
    Refused(Diagnostic),
}

fn yaml_error(e: &serde_yaml::Error) -> Diagnostic {
    let pos = e.location().map(|l| Pos {
        line: l.line(),
        column: l.column(),
    });
    let message = e.to_string();
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    let help = match message.as_str() {
        "repetition limit exceeded" => Some("the file expands aliases too many times"),
        m if m.starts_with("recursion limit exceeded") => Some("the file nests too deeply"),
        _ => None,
    };
    let d = Diagnostic::new(format!("invalid YAML: {message}")).at(pos);
    match help {
        Some(h) => d.help(h),
        None => d,
    }
}

/// Where each key and value of the file sits, by path.
#[derive(Debug, Default)]
pub struct Spans {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
    /// Each mapping's keys in file order, as written: a key that YAML
    /// reads as a number or a boolean is shown the way the user typed it.
    written: HashMap<String, Vec<(String, Pos)>>,
    duplicates: Vec<Diagnostic>,
}

impl Spans {
    /// The position of the key at the end of `path`.
    pub fn key(&self, path: &[&str]) -> Option<Pos> {
        self.keys.get(&join(path)).copied()
    }

    /// The position of the value at `path`, or of its key when the value
    /// has no position of its own.
    pub fn value(&self, path: &[&str]) -> Option<Pos> {
        let joined = join(path);
        self.values
            .get(&joined)
            .or_else(|| self.keys.get(&joined))
            .copied()
    }

    /// The text and position of the `index`th key of the mapping at
    /// `path`, counting in file order from 0.
    pub fn nth_key(&self, path: &[&str], index: usize) -> Option<(&str, Pos)> {
        let (text, at) = self.written.get(&join(path))?.get(index)?;
        Some((text, *at))
    }

    fn index(text: &str) -> Result<Spans, Stop> {
        let mut indexer = Indexer::default();
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, mark) = parser.next_token().map_err(scan_error)?;
            if matches!(event, Event::StreamEnd) {
                return Ok(indexer.spans);
            }
            indexer.event(event, pos(&mark)).map_err(Stop::Refused)?;
        }
    }
}

fn join(path: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(part);
    }
    out
}

fn pos(mark: &Marker) -> Pos {
    Pos {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        path: String,
        index: usize,
    },
    /// A mapping or sequence used as a key, and where it starts; its
    /// contents are not indexed.
    Key(Pos),
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    spans: Spans,
}

impl Indexer {
    fn event(&mut self, event: Event, at: Pos) -> Result<(), Diagnostic> {
        match event {
            Event::Scalar(text, ..) => self.node(Some(text), at, None),
            Event::Alias(_) => self.node(None, at, None),
            Event::MappingStart(..) => self.node(None, at, Some(true)),
            Event::SequenceStart(..) => self.node(None, at, Some(false)),
            Event::MappingEnd | Event::SequenceEnd => {
                match self.stack.pop() {
                    Some(Frame::Key(at)) => {
                        self.written("<complex key>", at);
                        self.key_done("<complex key>".into());
                    }
                    _ => self.value_done(),
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A node starts: a scalar or alias (no container) or a container.
    fn node(
        &mut self,
        scalar: Option<String>,
        at: Pos,
        map: Option<bool>,
    ) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(at));
        }
        let in_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
        if in_key {
            match map {
                Some(_) => self.stack.push(Frame::Key(at)),
                None => self.key_at(scalar.unwrap_or_default(), at),
            }
            return Ok(());
        }
        let path = self.child_path();
        if let Some(path) = &path {
            self.spans.values.insert(path.clone(), at);
        }
        let path = path.unwrap_or_default();
        match map {
            Some(true) => self.stack.push(Frame::Map {
                path,
                key: None,
                seen: HashMap::new(),
            }),
            Some(false) => self.stack.push(Frame::Seq { path, index: 0 }),
            None => self.value_done(),
        }
        Ok(())
    }

    fn child_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map {
                path,
                key: Some(key),
                ..
            }) => Some(child(path, key)),
            Some(Frame::Seq { path, index }) => Some(child(path, &index.to_string())),
            _ => None,
        }
    }

    fn key_at(&mut self, key: String, at: Pos) {
        self.written(&key, at);
        if let Some(Frame::Map { path, seen, .. }) = self.stack.last_mut() {
            let full = child(path, &key);
            if let Some(first) = seen.get(&key) {
                self.spans.duplicates.push(
                    Diagnostic::new(format!("duplicate key `{key}`"))
                        .at(Some(at))
                        .help(format!("first defined at line {}", first.line)),
                );
            } else {
                seen.insert(key.clone(), at);
                self.spans.keys.insert(full, at);
            }
        }
        self.key_done(key);
    }

    /// Records a key of the innermost mapping in file order.
    fn written(&mut self, key: &str, at: Pos) {
        if let Some(Frame::Map { path, .. }) = self.stack.last() {
            let keys = self.spans.written.entry(path.clone()).or_default();
            keys.push((key.to_owned(), at));
        }
    }

    fn key_done(&mut self, name: String) {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = Some(name);
        }
    }

    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            _ => {}
        }
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}{SEP}{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Pos> {
        Some(Pos { line, column })
    }

    #[test]
    fn finds_keys_and_values() {
        let mut src =
            parse("name: x\nsteps:\n  a:\n    agent: b\n    needs: [c, d]\n".into()).unwrap();
        assert_eq!(
            src.spans.key(&["steps", "a"]),
            None,
            "positions are indexed on demand"
        );
        src.locate();
        assert_eq!(src.spans.key(&["steps", "a"]), at(3, 3));
        assert_eq!(src.spans.value(&["steps", "a", "agent"]), at(4, 12));
        assert_eq!(src.spans.value(&["steps", "a", "needs", "1"]), at(5, 16));
    }

    #[test]
    fn reports_every_duplicate() {
        let text = "steps:\n  a: {}\n  b: {}\n  a: {}\n  b: {}\n";
        let (_, diagnostics) = parse(text.into()).unwrap_err();
        assert_eq!(diagnostics.len(), 2);
        assert_eq!(diagnostics[0].pos, at(4, 3));
        assert!(diagnostics[0].message.contains("`a`"));
    }

    #[test]
    fn syntax_error_has_position() {
        let (_, diagnostics) = parse("a: [1,\n".into()).unwrap_err();
        assert!(diagnostics[0].message.starts_with("invalid YAML"));
        assert!(diagnostics[0].pos.is_some());
    }

    #[test]
    fn a_byte_order_mark_is_dropped_without_moving_columns() {
        let mut src = parse("\u{feff}name: x\nsteps: {a: {agent: b}}\n".into()).unwrap();
        src.locate();
        assert!(src.text.starts_with("name"));
        assert_eq!(src.spans.value(&["name"]), at(1, 7));
    }

    #[test]
    fn keys_are_kept_as_written_in_file_order() {
        let mut src = parse("steps:\n  1e1: {}\n  'b': {}\n  ? [c]\n  : {}\n".into()).unwrap();
        src.locate();
        assert_eq!(
            src.spans.nth_key(&["steps"], 0),
            Some(("1e1", Pos { line: 2, column: 3 }))
        );
        assert_eq!(src.spans.nth_key(&["steps"], 1).map(|k| k.0), Some("b"));
        assert_eq!(
            src.spans.nth_key(&["steps"], 2).map(|k| k.0),
            Some("<complex key>")
        );
        assert_eq!(src.spans.nth_key(&["steps"], 3), None);
    }

    #[test]
    fn aliases_that_copy_too_much_text_are_refused_before_expanding() {
        // 128 KiB of text, copied 8 times into `b`, whose copies are 1 MiB
        // (and a byte for each node) each; with the 1 MiB that `b` itself
        // copied, the 15th copy of `b` crosses.
        let text = |copies: usize| {
            let eight = ["*a"; 8].join(", ");
            let copies = vec!["*b"; copies].join(", ");
            let a = "x".repeat(128 * 1024);
            format!("a: &a {a}\nb: &b [{eight}]\nc: [{copies}]\n")
        };
        let (_, diagnostics) = parse(text(20)).unwrap_err();
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0]
            .message
            .contains("aliases expand to more than 16 MiB"));
        assert_eq!(diagnostics[0].pos, at(3, 5 + 4 * 14));
        assert!(parse(text(2)).is_ok());
    }

    #[test]
    fn alias_bomb_and_deep_nesting_are_errors() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g"])
        {
            let list = vec![format!("*{prev}"); 9].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{list}]\n"));
        }
        assert!(parse(bomb).is_err());
        assert!(parse("[".repeat(100_000)).is_err());
        assert!(parse("a: ".to_owned() + &"- ".repeat(10_000) + "x\n").is_err());
    }
}
