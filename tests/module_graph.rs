//! Checks on the module structure of the server, read from the source text.
//!
//! The checks need nothing from the crate: they read every `.rs` file under
//! `src/` (or under `$MODULE_GRAPH_SRC`, to check another tree such as a copy),
//! strip comments, string literals and `#[cfg(test)]` items, collect the module
//! paths each file names (`use` trees, inline `crate::`/`super::`/`self::`
//! paths) and check:
//!
//! 1. no cycle between the top-level modules declared in `src/lib.rs`;
//! 2. no cycle between module files that are not ancestors of each other
//!    (`broker::node` and `broker::redis`, `app` and `http::serve`, …);
//! 3. `src/store` imports none of [`STORE_FORBIDDEN`];
//! 4. the broker engines ([`ENGINE_NAMES`]) are named only in
//!    [`ENGINE_ALLOWED`].
//!
//! A failure names the offending file and line. The parser is a small lexer,
//! not a Rust parser; what it gets only approximately right is listed at
//! [`strip_test_items`], [`PathParser`] and [`resolve`], and it is itself
//! tested at the bottom of this file.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Top-level modules that nothing under `src/store` may import: the store is
/// SQL only, the layers above it depend on it and not the other way round.
const STORE_FORBIDDEN: &[&str] = &["ws", "room", "broker", "hub", "http", "app"];

/// Names of the broker engines. Everything outside the broker deals with the
/// broker through its engine-neutral API, so that an engine can change
/// without touching the rest of the server.
const ENGINE_NAMES: &[&str] = &[
    "RedisBroker",
    "Broker::Memory",
    "Broker::Redis",
    "Presence::Local",
    "Presence::Redis",
];

/// Where [`ENGINE_NAMES`] may appear, relative to `src/`: the broker itself
/// and the place where the application is wired. A trailing `/` means a whole
/// directory.
const ENGINE_ALLOWED: &[&str] = &["broker/", "app.rs"];

/// Environment variable naming another source root to check.
const SRC_OVERRIDE: &str = "MODULE_GRAPH_SRC";

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

#[test]
fn no_cycle_between_top_level_modules() {
    let tree = SourceTree::load();
    if let Err(report) = check_top_level_cycles(&tree) {
        panic!("{report}");
    }
}

#[test]
fn no_cycle_between_sibling_submodules() {
    let tree = SourceTree::load();
    if let Err(report) = check_file_cycles(&tree) {
        panic!("{report}");
    }
}

#[test]
fn store_is_sql_only() {
    let tree = SourceTree::load();
    if let Err(report) = check_store_imports(&tree) {
        panic!("{report}");
    }
}

#[test]
fn broker_engines_are_named_only_in_broker_and_app() {
    let tree = SourceTree::load();
    if let Err(report) = check_engine_names(&tree) {
        panic!("{report}");
    }
}

/// Check 1: the graph between top-level modules has no cycle.
fn check_top_level_cycles(tree: &SourceTree) -> Result<(), String> {
    let graph = tree.graph(|module| {
        let top = module.first()?;
        tree.top_level.contains(top).then(|| vec![top.clone()])
    });
    cycles_report(tree, "top-level modules", &graph)
}

/// Check 2: the graph between module files has no cycle, counting only edges
/// between modules that are not ancestors of each other (a `mod.rs` that
/// re-exports its children, and children that use their parent's items, are
/// ordinary Rust).
fn check_file_cycles(tree: &SourceTree) -> Result<(), String> {
    let graph = tree.graph(|path| tree.owning_module(path));
    cycles_report(tree, "module files", &graph)
}

/// Check 3: no file under `src/store` imports a module of [`STORE_FORBIDDEN`].
fn check_store_imports(tree: &SourceTree) -> Result<(), String> {
    let mut found = String::new();
    for file in tree.modules().filter(|f| f.module[0] == "store") {
        for import in tree.imports(file) {
            let top = import.target.first().map_or("", String::as_str);
            if STORE_FORBIDDEN.contains(&top) {
                let _ = writeln!(
                    found,
                    "  src/{}:{}: `{}` imports `{top}`",
                    file.rel, import.line, import.written
                );
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(format!(
        "src/store is SQL only: it must not import any of {STORE_FORBIDDEN:?} \
         (source root {}):\n{found}",
        tree.root.display()
    ))
}

/// Check 4: the identifiers of [`ENGINE_NAMES`] appear in non-test code only
/// in [`ENGINE_ALLOWED`] (comments and strings do not count). Every `.rs`
/// file counts, `lib.rs` and `main.rs` included. Approximate: a name is
/// matched as written, so `Memory(…)` after `use Broker::*`, or
/// `Self::Redis` in an `impl Broker`, is not seen.
fn check_engine_names(tree: &SourceTree) -> Result<(), String> {
    let mut found = String::new();
    for file in tree.files.iter().filter(|f| !engine_allowed(&f.rel)) {
        for name in ENGINE_NAMES {
            for line in find_sequence(&file.tokens, &lex(name)) {
                let _ = writeln!(found, "  src/{}:{line}: names `{name}`", file.rel);
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the broker engines may be named only in {ENGINE_ALLOWED:?} under src/ \
         (source root {}):\n{found}",
        tree.root.display()
    ))
}

/// Whether `rel` (a path relative to `src/`) is one of [`ENGINE_ALLOWED`].
fn engine_allowed(rel: &str) -> bool {
    ENGINE_ALLOWED
        .iter()
        .any(|allowed| match allowed.strip_suffix('/') {
            Some(dir) => rel.starts_with(&format!("{dir}/")),
            None => rel == *allowed,
        })
}

/// Lines where the token sequence `needle` occurs in `tokens`.
fn find_sequence(tokens: &[Token], needle: &[Token]) -> Vec<usize> {
    if needle.is_empty() {
        return Vec::new();
    }
    tokens
        .windows(needle.len())
        .filter(|w| w.iter().zip(needle).all(|(a, b)| a.text == b.text))
        .map(|w| w[0].line)
        .collect()
}

// ---------------------------------------------------------------------------
// The source tree
// ---------------------------------------------------------------------------

/// One `.rs` file of the tree, already stripped of comments, strings and
/// `#[cfg(test)]` items.
#[derive(Debug)]
struct SourceFile {
    /// Path relative to the source root, with `/` separators (`broker/node.rs`).
    rel: String,
    /// Module path (`["broker", "node"]`); empty for `lib.rs`.
    module: Vec<String>,
    /// A binary crate root (`main.rs`, `bin/…`): not part of the library's
    /// module graph, its `crate::` is another crate.
    binary: bool,
    /// Non-test tokens.
    tokens: Vec<Token>,
    /// Paths the non-test code names.
    paths: Vec<RawPath>,
}

/// The library's files and what is needed to resolve the paths they name.
#[derive(Debug)]
struct SourceTree {
    /// Where the files were read from (for messages).
    root: PathBuf,
    /// Non-test files, sorted by path.
    files: Vec<SourceFile>,
    /// The modules `lib.rs` declares.
    top_level: BTreeSet<String>,
    /// Module paths that have a file (`["broker"]`, `["broker", "node"]`, …).
    module_files: BTreeSet<Vec<String>>,
    /// Names `lib.rs` brings into the crate root with `use` (`AppState` →
    /// `app::AppState`), so that `crate::AppState` counts as `app`.
    root_names: BTreeMap<String, Vec<String>>,
}

/// A path a file names, resolved from the crate root.
#[derive(Debug, PartialEq)]
struct Import {
    /// Absolute path without `crate` (`["ws", "outbox", "Outbox"]`).
    target: Vec<String>,
    line: usize,
    /// The path as written (`super::redis::Inner`).
    written: String,
}

/// Where an edge of a graph comes from.
#[derive(Debug)]
struct Evidence {
    file: String,
    line: usize,
    written: String,
}

/// A directed graph between module names, each edge with every place that
/// creates it (in file and line order).
type Graph = BTreeMap<String, BTreeMap<String, Vec<Evidence>>>;

impl SourceTree {
    /// Reads the tree at `$MODULE_GRAPH_SRC`, or else this crate's `src/`.
    fn load() -> Self {
        let root = std::env::var_os(SRC_OVERRIDE)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src")));
        let mut sources = Vec::new();
        read_rs_files(&root, &root, &mut sources);
        let tree = Self::from_sources(root, sources);
        // An empty graph has no cycle: make sure the tree was really read.
        assert!(
            !tree.top_level.is_empty(),
            "{}/lib.rs declares no module: wrong source root?",
            tree.root.display()
        );
        for top in &tree.top_level {
            assert!(
                tree.module_files.contains(std::slice::from_ref(top)),
                "lib.rs declares `mod {top};` but neither {top}.rs nor {top}/mod.rs is under {}",
                tree.root.display()
            );
        }
        tree
    }

    /// Builds the tree from `(path relative to the root, source)` pairs.
    fn from_sources(root: PathBuf, sources: Vec<(String, String)>) -> Self {
        let mut files: Vec<SourceFile> = Vec::new();
        let mut test_only: Vec<Vec<String>> = Vec::new();
        for (rel, source) in sources {
            let (module, binary) = module_of(&rel);
            let (tokens, test_mods) = strip_test_items(&lex(&source));
            if !binary {
                test_only.extend(test_mods.into_iter().map(|m| child(&module, &m)));
            }
            let paths = scan_paths(&tokens);
            files.push(SourceFile {
                rel,
                module,
                binary,
                tokens,
                paths,
            });
        }
        // `#[cfg(test)] mod x;` makes x's file (and everything below) test-only.
        files.retain(|f| f.binary || !test_only.iter().any(|t| f.module.starts_with(t)));
        files.sort_by(|a, b| a.rel.cmp(&b.rel));

        let module_files = files
            .iter()
            .filter(|f| !f.binary)
            .map(|f| f.module.clone())
            .collect();
        let mut tree = SourceTree {
            root,
            files,
            top_level: BTreeSet::new(),
            module_files,
            root_names: BTreeMap::new(),
        };
        if let Some(lib) = tree.files.iter().find(|f| f.rel == "lib.rs") {
            let top_level = declared_mods(&lib.tokens).into_iter().collect();
            let root_names = lib
                .paths
                .iter()
                .filter_map(|p| {
                    let name = p.binding.clone()?;
                    Some((name, resolve(&p.segments, &p.scope, &tree.module_files)?))
                })
                .collect();
            tree.top_level = top_level;
            tree.root_names = root_names;
        }
        tree
    }

    /// The files of the library's modules (not `lib.rs`, not binaries).
    fn modules(&self) -> impl Iterator<Item = &SourceFile> {
        self.files
            .iter()
            .filter(|f| !f.binary && !f.module.is_empty())
    }

    /// The crate paths `file` names, resolved from the crate root. Paths that
    /// leave the crate (std, dependencies) are left out.
    fn imports(&self, file: &SourceFile) -> Vec<Import> {
        file.paths
            .iter()
            .filter_map(|raw| {
                let current = [file.module.as_slice(), raw.scope.as_slice()].concat();
                let target = resolve(&raw.segments, &current, &self.module_files)?;
                Some(Import {
                    target: self.through_root_names(target),
                    line: raw.line,
                    written: raw.segments.join("::"),
                })
            })
            .collect()
    }

    /// `crate::AppState` is `app::AppState` when lib.rs has `pub use app::AppState`.
    fn through_root_names(&self, target: Vec<String>) -> Vec<String> {
        let Some(first) = target.first() else {
            return target;
        };
        if self.top_level.contains(first) {
            return target;
        }
        match self.root_names.get(first) {
            Some(real) => real.iter().chain(&target[1..]).cloned().collect(),
            None => target,
        }
    }

    /// The longest module path with a file that `path` starts with (the
    /// module file that defines or re-exports what `path` names).
    fn owning_module(&self, path: &[String]) -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| &path[..n])
            .find(|prefix| self.module_files.contains(*prefix))
            .map(<[String]>::to_vec)
    }

    /// The graph between the nodes `node_of` maps module paths to: an edge
    /// a → b for every file of a that names something of b, unless a is b or
    /// one is an ancestor of the other.
    fn graph(&self, node_of: impl Fn(&[String]) -> Option<Vec<String>>) -> Graph {
        let mut graph = Graph::new();
        for file in self.modules() {
            let Some(from) = node_of(&file.module) else {
                continue;
            };
            for import in self.imports(file) {
                let Some(to) = node_of(&import.target) else {
                    continue;
                };
                if from.starts_with(&to) || to.starts_with(&from) {
                    continue;
                }
                graph
                    .entry(from.join("::"))
                    .or_default()
                    .entry(to.join("::"))
                    .or_default()
                    .push(Evidence {
                        file: file.rel.clone(),
                        line: import.line,
                        written: import.written,
                    });
            }
        }
        graph
    }
}

/// Collects `(relative path, source)` of every `.rs` file under `dir`.
fn read_rs_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {} (set {SRC_OVERRIDE}?): {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            read_rs_files(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(root).expect("under the root");
            let rel: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push((rel.join("/"), source));
        }
    }
}

/// The module path of a file (`broker/mod.rs` → `broker`, `broker/node.rs` →
/// `broker::node`), and whether it is a binary crate root instead.
fn module_of(rel: &str) -> (Vec<String>, bool) {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts == ["main"] || parts[0] == "bin" {
        return (parts, true);
    }
    if parts == ["lib"] || parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    (parts, false)
}

/// `parent::name`.
fn child(parent: &[String], name: &str) -> Vec<String> {
    let mut path = parent.to_vec();
    path.push(name.to_string());
    path
}

// ---------------------------------------------------------------------------
// Cycles
// ---------------------------------------------------------------------------

/// Every cycle of `graph` that is the shortest one through one of its edges,
/// shortest first, each once (rotated to start at its smallest node, ending
/// where it starts: `["app", "http", "app"]`). Listing one cycle per edge
/// rather than one per strongly connected component shows every dependency
/// that has to go to break them.
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut cycles = BTreeSet::new();
    for (from, targets) in graph {
        for to in targets.keys() {
            if let Some(back) = shortest_path(graph, to, from) {
                let mut cycle: Vec<String> = std::iter::once(from.clone()).chain(back).collect();
                cycle.pop(); // `from` again
                let start = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(start);
                cycle.push(cycle[0].clone());
                cycles.insert((cycle.len(), cycle));
            }
        }
    }
    cycles.into_iter().map(|(_, cycle)| cycle).collect()
}

/// The shortest path `from` → … → `to` (both included), by breadth-first search.
fn shortest_path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while at != from {
                at = came_from[at];
                path.push(at.to_string());
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if next != from && !came_from.contains_key(next.as_str()) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// `Ok` if `graph` has no cycle, else a report of every cycle with, for each
/// edge, the first place that creates it.
fn cycles_report(tree: &SourceTree, what: &str, graph: &Graph) -> Result<(), String> {
    let cycles = find_cycles(graph);
    if cycles.is_empty() {
        return Ok(());
    }
    let mut report = format!(
        "{} cycle(s) between {what} (source root {}):\n",
        cycles.len(),
        tree.root.display()
    );
    for cycle in &cycles {
        let _ = writeln!(report, "\n  {}", cycle.join(" -> "));
        for pair in cycle.windows(2) {
            let evidence = &graph[&pair[0]][&pair[1]];
            let first = &evidence[0];
            let _ = write!(
                report,
                "    {} -> {}: src/{}:{} `{}`",
                pair[0], pair[1], first.file, first.line, first.written
            );
            if evidence.len() > 1 {
                let _ = write!(report, " (+{} more)", evidence.len() - 1);
            }
            report.push('\n');
        }
    }
    Err(report)
}

// ---------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------

/// A token: an identifier, keyword or number, `::`, or one punctuation
/// character. Comments and literals produce no token.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// Splits Rust source into [`Token`]s, dropping comments (line, doc and
/// nested block comments) and string, byte-string, raw-string and character
/// literals, so that paths written in them do not count.
fn lex(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        at: 0,
        line: 1,
        tokens: Vec::new(),
    };
    lexer.run();
    lexer.tokens
}

/// State of [`lex`].
struct Lexer<'a> {
    chars: &'a [char],
    at: usize,
    line: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    /// Moves one character on, counting lines.
    fn bump(&mut self) {
        if self.peek(0) == Some('\n') {
            self.line += 1;
        }
        self.at += 1;
    }

    fn push(&mut self, text: String) {
        let line = self.line;
        self.tokens.push(Token { text, line });
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            match (c, self.peek(1)) {
                ('/', Some('/')) => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                ('/', Some('*')) => self.block_comment(),
                ('"', _) => self.string(),
                ('\'', _) => self.char_or_lifetime(),
                (':', Some(':')) => {
                    self.push("::".to_string());
                    self.at += 2;
                }
                (c, _) if is_ident_char(c) => {
                    if !self.prefixed_literal() {
                        self.ident();
                    }
                }
                (c, _) if c.is_whitespace() => self.bump(),
                (c, _) => {
                    self.push(c.to_string());
                    self.bump();
                }
            }
        }
    }

    /// `/* … */`, which nests.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while let Some(c) = self.peek(0) {
            match (c, self.peek(1)) {
                ('/', Some('*')) => {
                    depth += 1;
                    self.at += 2;
                }
                ('*', Some('/')) => {
                    depth -= 1;
                    self.at += 2;
                    if depth == 0 {
                        return;
                    }
                }
                _ => self.bump(),
            }
        }
    }

    /// `"…"` with `\` escapes, from the opening quote.
    fn string(&mut self) {
        self.bump();
        while let Some(c) = self.peek(0) {
            self.bump();
            match c {
                '\\' => self.bump(),
                '"' => return,
                _ => {}
            }
        }
    }

    /// `r"…"`, `r#"…"#` (any number of `#`), from the `"` or first `#`.
    fn raw_string(&mut self) {
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            hashes += 1;
            self.at += 1;
        }
        self.bump(); // the opening quote
        while let Some(c) = self.peek(0) {
            self.bump();
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                self.at += hashes;
                return;
            }
        }
    }

    /// `'x'`, `'\n'`, `'\u{1F600}'` are skipped; the quote of a lifetime or
    /// label (`'a`, `'outer:`) becomes a token.
    fn char_or_lifetime(&mut self) {
        if self.peek(1) == Some('\\') {
            self.at += 2;
            self.bump(); // the escaped character, which may be a quote
            while self.peek(0).is_some_and(|c| c != '\'') {
                self.bump();
            }
            self.at += 1;
        } else if self.peek(2) == Some('\'') {
            self.at += 1;
            self.bump();
            self.at += 1;
        } else {
            self.push("'".to_string());
            self.at += 1;
        }
    }

    /// Literals that start like an identifier: `b"…"`, `c"…"`, `b'x'`,
    /// `r"…"`, `br#"…"#`, `cr"…"`, and raw identifiers (`r#type` is `type`).
    /// Returns whether one was consumed.
    fn prefixed_literal(&mut self) -> bool {
        let (c0, c1, c2) = (self.peek(0), self.peek(1), self.peek(2));
        let quote_or_hash = |c: Option<char>| matches!(c, Some('"' | '#'));
        match (c0, c1) {
            (Some('b' | 'c'), Some('"')) => {
                self.at += 1;
                self.string();
            }
            (Some('b'), Some('\'')) => {
                self.at += 1;
                self.char_or_lifetime();
            }
            (Some('r'), Some('#')) if c2.is_some_and(is_ident_char) => {
                self.at += 2;
                self.ident();
            }
            (Some('r'), c1) if quote_or_hash(c1) => {
                self.at += 1;
                self.raw_string();
            }
            (Some('b' | 'c'), Some('r')) if quote_or_hash(c2) => {
                self.at += 2;
                self.raw_string();
            }
            _ => return false,
        }
        true
    }

    fn ident(&mut self) {
        let start = self.at;
        while self.peek(0).is_some_and(is_ident_char) {
            self.at += 1;
        }
        self.push(self.chars[start..self.at].iter().collect());
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident(token: &Token) -> bool {
    token
        .text
        .starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The text of `tokens[i]`, or `""` past the end.
fn text(tokens: &[Token], i: usize) -> &str {
    tokens.get(i).map_or("", |t| t.text.as_str())
}

/// Keywords that start an item or statement which a comma cannot end (in
/// `fn f<A, B>() where A: X, B: Y {}` the commas are inside the item).
const ITEM_KEYWORDS: &[&str] = &[
    "async",
    "const",
    "enum",
    "extern",
    "fn",
    "impl",
    "let",
    "macro_rules",
    "mod",
    "static",
    "struct",
    "trait",
    "type",
    "union",
    "unsafe",
    "use",
];

/// `tokens` without the items under `#[cfg(test)]` (or `#[cfg(all(test, …))]`),
/// and the names of the modules declared test-only (`#[cfg(test)] mod x;`).
///
/// An inner `#![cfg(test)]` makes the whole file test-only (approximate: one
/// inside an inline module would drop the whole file too).
fn strip_test_items(tokens: &[Token]) -> (Vec<Token>, Vec<String>) {
    let mut kept = Vec::new();
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some(attr_end) = attribute_end(tokens, i)
            && is_cfg_test(&tokens[i..attr_end])
        {
            if text(tokens, i + 1) == "!" {
                return (Vec::new(), test_mods);
            }
            let end = item_end(tokens, attr_end);
            test_mods.extend(declared_mods(&tokens[attr_end..end]));
            i = end;
            continue;
        }
        kept.push(tokens[i].clone());
        i += 1;
    }
    (kept, test_mods)
}

/// If `tokens[i]` starts an attribute (`#[…]` or `#![…]`), the index just
/// after its closing `]`.
fn attribute_end(tokens: &[Token], i: usize) -> Option<usize> {
    if text(tokens, i) != "#" {
        return None;
    }
    let open = if text(tokens, i + 1) == "!" {
        i + 2
    } else {
        i + 1
    };
    if text(tokens, open) != "[" {
        return None;
    }
    let mut depth = 0;
    for (j, token) in tokens.iter().enumerate().skip(open) {
        match token.text.as_str() {
            "[" => depth += 1,
            "]" => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
    }
    Some(tokens.len())
}

/// Whether an attribute (`#[…]`, all its tokens) is `cfg(test)` or
/// `cfg(all(test, …))`.
fn is_cfg_test(attr: &[Token]) -> bool {
    let inner: Vec<&str> = attr
        .iter()
        .map(|t| t.text.as_str())
        .skip_while(|t| *t != "[")
        .skip(1)
        .collect();
    inner == ["cfg", "(", "test", ")", "]"] || inner.starts_with(&["cfg", "(", "all", "(", "test"])
}

/// The index just after the item (or field, variant, statement) that starts
/// at `start`, after the attribute that was just read.
///
/// An item ends at a `;` outside brackets, or at the `}` that closes its body
/// when no `=` came before it (`const X: S = S { … };` goes on to the `;`);
/// a field, variant or expression (anything not starting with an
/// [`ITEM_KEYWORDS`] keyword) also ends at a comma outside brackets and
/// generics. A closing bracket that belongs to the enclosing block ends it
/// too. Approximate: `<`/`>` outside brackets are taken for generics, so a
/// comparison there (`#[cfg(test)] A < B,` in a match arm) can run on.
fn item_end(tokens: &[Token], start: usize) -> usize {
    let mut i = start;
    while let Some(end) = attribute_end(tokens, i) {
        i = end;
    }
    let mut first = i;
    if text(tokens, first) == "pub" {
        first += 1;
        if text(tokens, first) == "(" {
            while !matches!(text(tokens, first), ")" | "") {
                first += 1;
            }
            first += 1;
        }
    }
    let is_item = ITEM_KEYWORDS.contains(&text(tokens, first));

    let (mut depth, mut angle, mut seen_eq) = (0usize, 0usize, false);
    while i < tokens.len() {
        let before = if i > start { text(tokens, i - 1) } else { "" };
        match text(tokens, i) {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => return i,
            "}" => {
                depth -= 1;
                if depth == 0 && !seen_eq {
                    return i + 1;
                }
            }
            ")" | "]" => depth -= 1,
            ";" if depth == 0 => return i + 1,
            "," if depth == 0 && angle == 0 && !is_item => return i + 1,
            "<" if depth == 0 => angle += 1,
            ">" if depth == 0 && angle > 0 && !matches!(before, "-" | "=") => angle -= 1,
            "=" if depth == 0 && angle == 0 && text(tokens, i + 1) != ">" => seen_eq = true,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The names of the out-of-line modules declared (`mod x;`, `pub mod x;`)
/// outside any block in `tokens`.
fn declared_mods(tokens: &[Token]) -> Vec<String> {
    let mut depth = 0;
    let mut mods = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token.text.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "mod" if depth == 0 && text(tokens, i + 2) == ";" => {
                if let Some(name) = tokens.get(i + 1).filter(|t| is_ident(t)) {
                    mods.push(name.text.clone());
                }
            }
            _ => {}
        }
    }
    mods
}

/// A path as written in a file.
#[derive(Debug, Clone, PartialEq)]
struct RawPath {
    /// `["super", "redis", "Inner"]`; a grouped `use` is one path per leaf
    /// (`use crate::{a::X, b}` → `crate::a::X`, `crate::b`), a glob is the
    /// path before `::*`.
    segments: Vec<String>,
    /// The line of the last segment.
    line: usize,
    /// Inline modules (`mod inner { … }`) the path is written in, outermost first.
    scope: Vec<String>,
    /// The name a `use` binds (`X`, or `Y` in `X as Y`, or `b` for
    /// `b::{self}`); `None` for globs and paths outside `use`.
    binding: Option<String>,
}

/// Every path the tokens name that can lead into the crate: all `use` trees,
/// and inline paths starting with `crate::`, `$crate::`, `super::` or `self::`.
/// Other inline paths (`Vec::new`, `tokio::spawn`, `outbox::Outbox` after
/// `use crate::ws::outbox`) are not collected: they are either outside the
/// crate or go through a `use` that is.
fn scan_paths(tokens: &[Token]) -> Vec<RawPath> {
    let mut parser = PathParser {
        tokens,
        scope: Vec::new(),
        in_use: false,
        out: Vec::new(),
    };
    let mut inline_mods: Vec<usize> = Vec::new(); // depth of each open `mod x {`
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let next = text(tokens, i + 1);
        match text(tokens, i) {
            "mod" if text(tokens, i + 2) == "{" => {
                parser.scope.push(next.to_string());
                inline_mods.push(depth + 1);
            }
            "{" => depth += 1,
            "}" => {
                if inline_mods.last() == Some(&depth) {
                    inline_mods.pop();
                    parser.scope.pop();
                }
                depth -= 1;
            }
            "use" if next != "::" => {
                parser.in_use = true;
                i = parser.tree(i + 1, &[]);
                continue;
            }
            "crate" | "super" | "self" if next == "::" && !follows_in(tokens, i) => {
                parser.in_use = false;
                i = parser.tree(i, &[]);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parser.out
}

/// Whether `tokens[i]` follows `in`, as `crate` does in `pub(in crate::a)`: a
/// visibility, not a dependency.
fn follows_in(tokens: &[Token], i: usize) -> bool {
    i > 0 && text(tokens, i - 1) == "in"
}

/// Reads path trees (`a::b::{c, d::{self, E as F}, g::*}`) into [`RawPath`]s.
///
/// Approximate: a path stops at `::<` (turbofish), so `crate::a::f::<T>` is
/// `crate::a::f`; `pub(in crate::a)` is a visibility, not counted; a path in a
/// string (`#[serde(with = "crate::a")]`) is not seen.
struct PathParser<'a> {
    tokens: &'a [Token],
    scope: Vec<String>,
    in_use: bool,
    out: Vec<RawPath>,
}

impl PathParser<'_> {
    /// Reads the tree starting at `i` below `prefix`; returns where it ends.
    fn tree(&mut self, mut i: usize, prefix: &[String]) -> usize {
        let mut segments = prefix.to_vec();
        while let Some(token) = self.tokens.get(i) {
            match token.text.as_str() {
                "{" => return self.group(i + 1, &segments),
                "*" => {
                    self.emit(segments, token.line, None);
                    return i + 1;
                }
                _ if is_ident(token) => {
                    segments.push(token.text.clone());
                    i += 1;
                    if text(self.tokens, i) == "::" && text(self.tokens, i + 1) != "<" {
                        i += 1;
                        continue;
                    }
                    let mut binding = match token.text.as_str() {
                        "self" => segments.iter().rev().nth(1).cloned(),
                        name => Some(name.to_string()),
                    };
                    if text(self.tokens, i) == "as" {
                        binding = Some(text(self.tokens, i + 1).to_string());
                        i += 2;
                    }
                    self.emit(segments, token.line, binding);
                    return i;
                }
                _ => return i,
            }
        }
        i
    }

    /// Reads `a, b::c, …}` (just after a `{`); returns the index after the `}`.
    fn group(&mut self, mut i: usize, prefix: &[String]) -> usize {
        loop {
            match text(self.tokens, i) {
                "" => return i,
                "}" => return i + 1,
                "," => i += 1,
                _ => {
                    let end = self.tree(i, prefix);
                    i = if end == i { i + 1 } else { end };
                }
            }
        }
    }

    fn emit(&mut self, segments: Vec<String>, line: usize, binding: Option<String>) {
        if segments.is_empty() {
            return;
        }
        let binding = binding.filter(|_| self.in_use);
        self.out.push(RawPath {
            segments,
            line,
            scope: self.scope.clone(),
            binding,
        });
    }
}

/// The absolute path (without `crate`) that `segments`, written in module
/// `current`, names; `None` if it does not lead into the crate.
///
/// `crate::` is the root, `self::` is `current`, each `super::` is one level
/// up. A path starting with another name (only collected from `use`) is a
/// child module of `current` if one has a file (`use actor::Room;` in
/// room/mod.rs), else an outside crate. Approximate: a `use` of a name that
/// an earlier `use` brought in (`use crate::ws; use ws::outbox::X;`) is taken
/// for an outside crate, but the earlier `use` already counts.
fn resolve(
    segments: &[String],
    current: &[String],
    module_files: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut rest = segments.iter().peekable();
    let mut path = match segments.first()?.as_str() {
        "crate" => {
            rest.next();
            Vec::new()
        }
        "self" | "super" => {
            let mut path = current.to_vec();
            while let Some(segment) = rest.next_if(|s| *s == "self" || *s == "super") {
                if segment == "super" {
                    path.pop()?;
                }
            }
            path
        }
        first if module_files.contains(&child(current, first)) => current.to_vec(),
        _ => return None,
    };
    path.extend(rest.filter(|s| *s != "self").cloned());
    Some(path)
}

// ---------------------------------------------------------------------------
// Tests of the parser and of the checks on small inline trees
// ---------------------------------------------------------------------------

mod parser {
    use super::*;

    /// A tree made of `(path under src/, source)`.
    fn tree(files: &[(&str, &str)]) -> SourceTree {
        let sources = files
            .iter()
            .map(|(rel, src)| (rel.to_string(), src.to_string()))
            .collect();
        SourceTree::from_sources(PathBuf::from("/fake/src"), sources)
    }

    /// The imports of `rel` in `tree`, as `("a::b::C", line)`.
    fn imports(tree: &SourceTree, rel: &str) -> Vec<(String, usize)> {
        let file = tree
            .files
            .iter()
            .find(|f| f.rel == rel)
            .unwrap_or_else(|| panic!("{rel} not in the tree"));
        tree.imports(file)
            .into_iter()
            .map(|i| (i.target.join("::"), i.line))
            .collect()
    }

    fn owned(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
        pairs.iter().map(|(p, l)| (p.to_string(), *l)).collect()
    }

    const LIB: &str = "pub mod a;\npub mod b;\npub mod c;\npub use b::Thing as Renamed;\n";

    #[test]
    fn grouped_use() {
        let t = tree(&[("lib.rs", LIB), ("a.rs", "use crate::{b::X, c};\n")]);
        assert_eq!(imports(&t, "a.rs"), owned(&[("b::X", 1), ("c", 1)]));
    }

    #[test]
    fn multi_line_use_with_nested_groups_self_alias_and_glob() {
        let src = "use crate::{\n    b::{self, X as Y},\n    c::*,\n};\nuse std::fmt;\n";
        let t = tree(&[("lib.rs", LIB), ("a.rs", src)]);
        assert_eq!(
            imports(&t, "a.rs"),
            owned(&[("b", 2), ("b::X", 2), ("c", 3)])
        );
    }

    #[test]
    fn inline_paths_and_macro_crate() {
        let src = "fn f() {\n    crate::b::persister::STORE_FAILED.load();\n    \
                   let v = crate::c::new::<u8>();\n    $crate::b::Y\n}\n";
        let t = tree(&[("lib.rs", LIB), ("a.rs", src)]);
        assert_eq!(
            imports(&t, "a.rs"),
            owned(&[
                ("b::persister::STORE_FAILED", 2),
                ("c::new", 3),
                ("b::Y", 4)
            ])
        );
    }

    #[test]
    fn visibility_paths_do_not_count() {
        let src = "pub(crate) fn f() {}\npub(in crate::b) fn g() {}\n";
        let t = tree(&[("lib.rs", LIB), ("a.rs", src)]);
        assert_eq!(imports(&t, "a.rs"), owned(&[]));
    }

    #[test]
    fn super_and_self_resolve_against_the_file_module() {
        let t = tree(&[
            ("lib.rs", "pub mod broker;\npub mod room;\n"),
            (
                "broker/mod.rs",
                "mod node;\nmod redis;\nuse self::node::N;\n",
            ),
            (
                "broker/node.rs",
                "use super::redis::Inner;\nuse super::super::room::R;\n",
            ),
            (
                "broker/redis.rs",
                "mod inner {\n    use super::super::node::N;\n}\n",
            ),
            (
                "room/mod.rs",
                "use super::broker::B;\nuse actor::A;\nuse tokio::sync;\nmod actor;\n",
            ),
            ("room/actor.rs", ""),
        ]);
        assert_eq!(
            imports(&t, "broker/mod.rs"),
            owned(&[("broker::node::N", 3)])
        );
        assert_eq!(
            imports(&t, "broker/node.rs"),
            owned(&[("broker::redis::Inner", 1), ("room::R", 2)])
        );
        assert_eq!(
            imports(&t, "broker/redis.rs"),
            owned(&[("broker::node::N", 2)])
        );
        assert_eq!(
            imports(&t, "room/mod.rs"),
            owned(&[("broker::B", 1), ("room::actor::A", 2)])
        );
    }

    #[test]
    fn names_reexported_by_lib_count_as_their_module() {
        let t = tree(&[
            ("lib.rs", LIB),
            ("a.rs", "use crate::Renamed;\n"),
            ("b.rs", ""),
        ]);
        assert_eq!(imports(&t, "a.rs"), owned(&[("b::Thing", 1)]));
    }

    #[test]
    fn cfg_test_items_are_skipped() {
        let src = "\
#[cfg(test)]
mod tests {
    use crate::b::X;
    fn f() { if true { crate::b::g() } }
}
#[cfg(test)]
#[allow(dead_code)]
fn helper() -> Result<u8, crate::b::E> where u8: Copy, u16: Copy { crate::b::h() }
struct S {
    #[cfg(test)]
    probe: std::collections::HashMap<u8, crate::b::P>,
    kept: crate::c::K,
}
#[cfg(test)]
const C: crate::b::S = crate::b::S { x: 1 };
#[cfg(all(test, unix))]
use crate::b::Unix;
#[cfg(not(test))]
use crate::c::NotTest;
use crate::c::Y;
";
        let t = tree(&[("lib.rs", LIB), ("a.rs", src)]);
        assert_eq!(
            imports(&t, "a.rs"),
            owned(&[("c::K", 12), ("c::NotTest", 19), ("c::Y", 20)])
        );
    }

    #[test]
    fn cfg_test_module_files_are_skipped() {
        let t = tree(&[
            (
                "lib.rs",
                "pub mod a;\npub mod b;\n#[cfg(test)]\nmod support;\n",
            ),
            ("a/mod.rs", "#[cfg(test)]\nmod fixtures;\nmod real;\n"),
            ("a/fixtures.rs", "use crate::b::X;\n"),
            ("a/fixtures/deep.rs", "use crate::b::X;\n"),
            ("a/real.rs", ""),
            ("b.rs", "use crate::a::Y;\n"),
            ("support.rs", "use crate::a::Z;\n"),
        ]);
        let rels: Vec<&str> = t.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a/mod.rs", "a/real.rs", "b.rs", "lib.rs"]);
        assert_eq!(check_top_level_cycles(&t), Ok(()));
    }

    #[test]
    fn comments_and_strings_are_skipped() {
        let src = r####"
// use crate::b::X;
/// crate::b::Doc
//! crate::b::InnerDoc
/* crate::b::Block /* nested */ crate::b::StillComment */
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::b::InString \" crate::b::AfterEscape";
    let _ = r##"crate::b::Raw "# crate::b::StillRaw"##;
    let _ = b"crate::b::Bytes";
    let _ = '"';
    let _ = '\'';
    let r#type = 1;
    crate::c::Real
}
"####;
        let t = tree(&[("lib.rs", LIB), ("a.rs", src)]);
        assert_eq!(imports(&t, "a.rs"), owned(&[("c::Real", 13)]));
    }

    #[test]
    fn a_top_level_cycle_is_reported_with_its_edges() {
        let t = tree(&[
            ("lib.rs", LIB),
            ("a.rs", "use crate::b::X;\n"),
            ("b.rs", "fn f() {\n    crate::c::g();\n}\n"),
            ("c.rs", "use crate::{\n    a::Y,\n};\n"),
        ]);
        let report = check_top_level_cycles(&t).expect_err("a -> b -> c -> a is a cycle");
        assert!(report.contains("a -> b -> c -> a"), "{report}");
        assert!(
            report.contains("a -> b: src/a.rs:1 `crate::b::X`"),
            "{report}"
        );
        assert!(
            report.contains("b -> c: src/b.rs:2 `crate::c::g`"),
            "{report}"
        );
        assert!(
            report.contains("c -> a: src/c.rs:2 `crate::a::Y`"),
            "{report}"
        );
    }

    #[test]
    fn every_cycle_is_listed_once() {
        let t = tree(&[
            ("lib.rs", LIB),
            ("a.rs", "use crate::b::X;\nuse crate::c::X;\n"),
            ("b.rs", "use crate::a::X;\nuse crate::a::Z;\n"),
            ("c.rs", "use crate::a::X;\n"),
        ]);
        let report = check_top_level_cycles(&t).expect_err("two cycles");
        assert!(report.starts_with("2 cycle(s)"), "{report}");
        assert!(report.contains("\n  a -> b -> a\n"), "{report}");
        assert!(report.contains("\n  a -> c -> a\n"), "{report}");
        assert!(
            report.contains("b -> a: src/b.rs:1 `crate::a::X` (+1 more)"),
            "{report}"
        );
    }

    #[test]
    fn sibling_cycle_counts_but_parent_and_child_do_not() {
        let lib = "pub mod broker;\n";
        let parent = "mod node;\nmod redis;\npub use node::Node;\npub use redis::Redis;\n";
        let node = "use super::Shared;\nuse super::redis::Inner;\n";
        let redis = "use crate::broker::Shared;\n";
        let acyclic = tree(&[
            ("lib.rs", lib),
            ("broker/mod.rs", parent),
            ("broker/node.rs", node),
            ("broker/redis.rs", redis),
        ]);
        assert_eq!(check_file_cycles(&acyclic), Ok(()));

        let redis = "use crate::broker::Shared;\nfn f() { super::node::g() }\n";
        let cyclic = tree(&[
            ("lib.rs", lib),
            ("broker/mod.rs", parent),
            ("broker/node.rs", node),
            ("broker/redis.rs", redis),
        ]);
        let report = check_file_cycles(&cyclic).expect_err("node <-> redis");
        assert!(
            report.contains("broker::node -> broker::redis -> broker::node"),
            "{report}"
        );
        assert!(
            report.contains("src/broker/node.rs:2 `super::redis::Inner`"),
            "{report}"
        );
        assert!(
            report.contains("src/broker/redis.rs:2 `super::node::g`"),
            "{report}"
        );
        assert_eq!(check_top_level_cycles(&cyclic), Ok(()));
    }

    #[test]
    fn store_importing_a_server_layer_is_reported() {
        let lib = "pub mod store;\npub mod ws;\npub mod domain;\n";
        let t = tree(&[
            ("lib.rs", lib),
            ("store/mod.rs", "mod persister;\nuse crate::domain::Id;\n"),
            (
                "store/persister.rs",
                "use crate::{domain::X, ws::outbox::Outbox};\n",
            ),
            ("ws/mod.rs", "use crate::store::Store;\n"),
            ("domain.rs", ""),
        ]);
        let report = check_store_imports(&t).expect_err("store imports ws");
        assert!(
            report.contains("src/store/persister.rs:1: `crate::ws::outbox::Outbox` imports `ws`"),
            "{report}"
        );
        assert_eq!(report.matches("imports `").count(), 1, "{report}");
    }

    #[test]
    fn engine_names_are_reported_outside_broker_and_app() {
        let t = tree(&[
            ("lib.rs", "pub mod app;\npub mod broker;\npub mod room;\n"),
            (
                "app.rs",
                "use crate::broker::RedisBroker;\nfn f() { Broker::Memory(r) }\n",
            ),
            (
                "broker/mod.rs",
                "pub enum Broker { Memory(R), Redis(R) }\nmod redis;\n",
            ),
            ("broker/redis.rs", "pub struct RedisBroker;\n"),
            (
                "room/mod.rs",
                "// Broker::Redis in a comment\nconst S: &str = \"Presence::Local\";\n\
                 fn f(p: Presence) { if let Presence::Redis(x) = p {} }\n\
                 #[cfg(test)]\nmod tests { fn t() { RedisBroker::connect() } }\n\
                 struct NotRedisBroker;\n",
            ),
            (
                "main.rs",
                "fn main() { vridge::broker::Broker::Memory(x); }\n",
            ),
        ]);
        let report = check_engine_names(&t).expect_err("room and main name engines");
        assert!(
            report.contains("src/room/mod.rs:3: names `Presence::Redis`"),
            "{report}"
        );
        assert!(
            report.contains("src/main.rs:1: names `Broker::Memory`"),
            "{report}"
        );
        assert_eq!(report.matches(": names `").count(), 2, "{report}");
    }

    #[test]
    fn engine_allowed_list() {
        assert!(engine_allowed("broker/redis.rs"));
        assert!(engine_allowed("app.rs"));
        assert!(!engine_allowed("brokerage.rs"));
        assert!(!engine_allowed("http/app.rs"));
    }
}
