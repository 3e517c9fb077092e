//! Finding the line and column of a key path (`objects.contact.fields.email.type`) in the
//! YAML source, for errors found after parsing.
//!
//! The manifest is parsed into plain structs, which keep no positions; instead the source
//! is scanned by indentation, block-style as manifests are written. A segment that cannot
//! be found (flow style, anchors) leaves the position of the deepest segment that was.

/// One logical entry: a key line, or a `- ` sequence item (whose inline content follows as
/// its own entry, two columns further in).
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    line: usize,
    indent: usize,
    dash: bool,
    text: &'a str,
}

fn entries(source: &str) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (n, raw) in source.lines().enumerate() {
        let trimmed = raw.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut indent = raw.len() - trimmed.len();
        let mut text = trimmed;
        while let Some(rest) = text.strip_prefix('-') {
            if !(rest.is_empty() || rest.starts_with(' ')) {
                break;
            }
            out.push(Entry {
                line: n + 1,
                indent,
                dash: true,
                text,
            });
            let inner = rest.trim_start_matches(' ');
            if inner.is_empty() {
                text = inner;
                break;
            }
            indent += 1 + (rest.len() - inner.len());
            text = inner;
        }
        if !text.is_empty() {
            out.push(Entry {
                line: n + 1,
                indent,
                dash: false,
                text,
            });
        }
    }
    out
}

fn is_key(text: &str, key: &str) -> bool {
    let rest = if let Some(r) = text.strip_prefix(key) {
        r
    } else if let Some(r) = text
        .strip_prefix('"')
        .and_then(|t| t.strip_prefix(key))
        .and_then(|t| t.strip_prefix('"'))
    {
        r
    } else if let Some(r) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_prefix(key))
        .and_then(|t| t.strip_prefix('\''))
    {
        r
    } else {
        return false;
    };
    rest.trim_start_matches(' ').starts_with(':')
}

/// The 1-based (line, column) of the node at `path`; `(0, 0)` if not even the first
/// segment is found.
pub fn locate(source: &str, path: &[&str]) -> (usize, usize) {
    let all = entries(source);
    let mut scope: &[Entry<'_>] = &all;
    let mut found = (0, 0);
    let mut last: Option<Entry<'_>> = None;
    for (depth, segment) in path.iter().enumerate() {
        let level = scope.first().map_or(usize::MAX, |e| e.indent);
        let hit = match segment.parse::<usize>() {
            Ok(index) => scope
                .iter()
                .enumerate()
                .filter(|(_, e)| e.indent == level && e.dash)
                .nth(index)
                .map(|(i, _)| i),
            Err(_) => scope
                .iter()
                .position(|e| e.indent == level && !e.dash && is_key(e.text, segment)),
        };
        let Some(i) = hit else {
            // Flow style (`{ case: lower }`): point at the first mention inside the scope.
            if let Some((e, at)) = last
                .iter()
                .chain(scope.iter())
                .find_map(|e| e.text.find(&format!("{segment}:")).map(|at| (e, at)))
            {
                let raw_line = source.lines().nth(e.line - 1).unwrap_or("");
                let mut offset = raw_line.len() - e.text.len() + at;
                found = (e.line, raw_line[..offset].chars().count() + 1);
                // Deeper keys of the same flow mapping follow on that line.
                for deeper in &path[depth + 1..] {
                    match raw_line[offset..].find(&format!("{deeper}:")) {
                        Some(more) => {
                            offset += more;
                            found = (e.line, raw_line[..offset].chars().count() + 1);
                        }
                        None => break,
                    }
                }
            }
            break;
        };
        let entry = scope[i];
        last = Some(entry);
        found = (entry.line, entry.indent + 1);
        let end = scope[i + 1..]
            .iter()
            .position(|e| e.indent <= level)
            .map_or(scope.len(), |p| i + 1 + p);
        scope = &scope[i + 1..end];
    }
    found
}

/// The position of the second `key` directly under `parent` (a duplicate key).
pub fn locate_duplicate(source: &str, parent: &[&str], key: &str) -> Option<(usize, usize)> {
    let all = entries(source);
    let mut scope: &[Entry<'_>] = &all;
    for segment in parent {
        let level = scope.first()?.indent;
        let i = match segment.parse::<usize>() {
            Ok(index) => scope
                .iter()
                .enumerate()
                .filter(|(_, e)| e.indent == level && e.dash)
                .nth(index)
                .map(|(i, _)| i)?,
            Err(_) => scope
                .iter()
                .position(|e| e.indent == level && !e.dash && is_key(e.text, segment))?,
        };
        let end = scope[i + 1..]
            .iter()
            .position(|e| e.indent <= level)
            .map_or(scope.len(), |p| i + 1 + p);
        scope = &scope[i + 1..end];
    }
    let level = scope.first()?.indent;
    scope
        .iter()
        .filter(|e| e.indent == level && !e.dash && is_key(e.text, key))
        .nth(1)
        .map(|e| (e.line, e.indent + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
format: 1
objects:
  # a comment
  contact:
    access: [read]
    fields:
      email:
        type: emial
        map:
          salesforce:
            fields: [Email]
            inbound:
              - case: lower
              - { date: { input: x } }
  deal:
    fields:
      email:
        type: string
";

    #[test]
    fn finds_nested_keys_sequence_items_and_flow_keys() {
        assert_eq!(locate(SOURCE, &["format"]), (1, 1));
        assert_eq!(locate(SOURCE, &["objects", "contact"]), (4, 3));
        assert_eq!(
            locate(SOURCE, &["objects", "contact", "fields", "email", "type"]),
            (8, 9)
        );
        assert_eq!(
            locate(SOURCE, &["objects", "deal", "fields", "email", "type"]),
            (18, 9)
        );
        let inbound = [
            "objects",
            "contact",
            "fields",
            "email",
            "map",
            "salesforce",
            "inbound",
        ];
        let mut first = inbound.to_vec();
        first.push("0");
        assert_eq!(locate(SOURCE, &first), (13, 15));
        let mut second = inbound.to_vec();
        second.extend(["1", "date"]);
        assert_eq!(locate(SOURCE, &second), (14, 19));
        assert_eq!(
            locate("a:\n  b: {c: {d: 1}}\n", &["a", "b", "c", "d"]),
            (2, 11)
        );
        // Unknown keys stop at the deepest known node.
        assert_eq!(locate(SOURCE, &["objects", "contact", "nope"]), (4, 3));
        assert_eq!(locate(SOURCE, &["nothing"]), (0, 0));
    }
}
