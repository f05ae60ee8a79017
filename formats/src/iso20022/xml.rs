//! A minimal XML writer for the bank files: elements, text and one attribute, indented by two
//! spaces, in the order they are written. Deterministic by construction: no clock, no maps.
//!
//! Text is escaped here; whether it is allowed at all (XML 1.0 characters, lengths) is checked
//! by the callers before they write, so the writer itself cannot fail.

pub(super) struct XmlWriter {
    out: String,
    open: Vec<&'static str>,
}

impl XmlWriter {
    /// A document with the UTF-8 declaration and a root element in `namespace`.
    pub(super) fn document(root: &'static str, namespace: &str) -> XmlWriter {
        let mut out = String::with_capacity(4096);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        out.push_str(root);
        out.push_str(" xmlns=\"");
        escape_into(&mut out, namespace, true);
        out.push_str("\">\n");
        XmlWriter {
            out,
            open: vec![root],
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.open.len() {
            self.out.push_str("  ");
        }
    }

    pub(super) fn open(&mut self, tag: &'static str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(">\n");
        self.open.push(tag);
    }

    pub(super) fn close(&mut self) {
        let tag = self.open.pop().expect("close matches an open element");
        self.indent();
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
    }

    /// `<tag>text</tag>` on one line.
    pub(super) fn leaf(&mut self, tag: &'static str, text: &str) {
        self.leaf_attr(tag, None, text);
    }

    /// `<tag name="value">text</tag>` on one line.
    pub(super) fn leaf_attr(
        &mut self,
        tag: &'static str,
        attr: Option<(&'static str, &str)>,
        text: &str,
    ) {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        if let Some((name, value)) = attr {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value, true);
            self.out.push('"');
        }
        self.out.push('>');
        escape_into(&mut self.out, text, false);
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
    }

    /// Closes every element still open and returns the bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        while self.open.len() > 1 {
            self.close();
        }
        let root = self.open.pop().expect("the root element");
        self.out.push_str("</");
        self.out.push_str(root);
        self.out.push_str(">\n");
        self.out.into_bytes()
    }
}

fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

/// Whether XML 1.0 can carry `c` as text, and it survives a parser unchanged (no CR, tab or
/// line feed, which are normalised or collapsed by schema whitespace rules).
pub(super) fn is_plain_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_indented_escaped_elements() {
        let mut w = XmlWriter::document("Document", "urn:x");
        w.open("A");
        w.leaf("B", "a<b & c>d \"q\"");
        w.leaf_attr("Amt", Some(("Ccy", "CNY")), "1.00");
        let text = String::from_utf8(w.finish()).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:x\">\n  <A>\n    \
             <B>a&lt;b &amp; c&gt;d \"q\"</B>\n    <Amt Ccy=\"CNY\">1.00</Amt>\n  </A>\n</Document>\n"
        );
    }

    #[test]
    fn plain_chars_exclude_controls_and_non_characters() {
        assert!(is_plain_char('a'));
        assert!(is_plain_char('中'));
        assert!(!is_plain_char('\n'));
        assert!(!is_plain_char('\u{1}'));
        assert!(!is_plain_char('\u{FFFE}'));
    }
}
