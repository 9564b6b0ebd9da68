//! Text from outside (the collector's replies) made safe to log: control, bidi and zero-width
//! characters are shown as `\u{…}` escapes and the result is bounded, so a hostile collector
//! cannot forge log lines, recolour a terminal or hide text in the journal.

/// The most characters of outside text one log field keeps; the rest is replaced by `…`.
pub const MAX_LOGGED_CHARS: usize = 512;

/// True for characters that must never reach a log as themselves: C0/C1 controls (ESC, CR,
/// LF, DEL…), bidi embeddings, overrides and isolates, zero-width and other invisible format
/// characters, line/paragraph separators and the byte-order mark.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                  // soft hyphen
            | '\u{061C}'                // Arabic letter mark
            | '\u{180E}'                // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}'   // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}'   // bidi isolates, deprecated format characters
            | '\u{FEFF}'                // byte-order mark / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotation
        )
}

/// `s` with every [`is_hidden`] character written as `\u{XXXX}` (a backslash as `\\`, so an
/// escape cannot be faked), cut to [`MAX_LOGGED_CHARS`] characters.
pub fn loggable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED_CHARS * 2));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_LOGGED_CHARS {
            out.push('…');
            break;
        }
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_hidden(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_bidi_and_zero_width() {
        let s = loggable("storm\x1b[2J\r\nFAKE line\u{202e}gpj.exe\u{200b}\u{7f}\u{85}");
        assert_eq!(
            s,
            "storm\\u{001b}[2J\\u{000d}\\u{000a}FAKE line\\u{202e}gpj.exe\\u{200b}\\u{007f}\\u{0085}"
        );
        assert!(!s.chars().any(is_hidden));
    }

    #[test]
    fn backslashes_cannot_fake_an_escape_and_plain_text_is_kept() {
        assert_eq!(loggable(r"a\u{1b}"), r"a\\u{1b}");
        assert_eq!(
            loggable("maintenance — région nord"),
            "maintenance — région nord"
        );
    }

    #[test]
    fn long_text_is_cut() {
        let s = loggable(&"x".repeat(10_000));
        assert_eq!(s.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(s.ends_with('…'));
    }
}
