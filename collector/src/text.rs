//! Hostile text made visible for people: device-supplied strings shown by the console and by the
//! CLI's tables have their control, bidirectional-override and zero-width characters replaced
//! by visible stand-ins, so they can neither hide nor reorder what is shown.

/// Makes control characters, bidirectional overrides and invisible characters visible: C0
/// controls and DEL become their Unicode control pictures (␀ … ␟, ␡); C1 controls, bidi
/// marks/embeddings/overrides/isolates and zero-width characters become `⟨U+202E⟩`. Escaping
/// HTML is the template's job.
pub fn visible(s: &str) -> String {
    visible_inner(s, false)
}

/// [`visible`], keeping line breaks (notes written by NOC staff).
pub fn visible_multiline(s: &str) -> String {
    visible_inner(s, true)
}

fn visible_inner(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\u{0}'..='\u{1f}' => {
                out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'));
            }
            '\u{7f}' => out.push('\u{2421}'),
            '\u{80}'..='\u{9f}'
            | '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}' => {
                out.push_str(&format!("⟨U+{:04X}⟩", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_zero_width_characters_become_visible() {
        assert_eq!(visible("a\u{7}b\u{0}c\n"), "a␇b␀c␊");
        assert_eq!(visible_multiline("a\nb\r"), "a\nb␍");
        assert_eq!(visible("x\u{202e}y\u{7f}"), "x⟨U+202E⟩y␡");
        assert_eq!(visible("a\u{200b}b\u{feff}"), "a⟨U+200B⟩b⟨U+FEFF⟩");
        assert_eq!(visible("\u{2066}dev\u{2069}"), "⟨U+2066⟩dev⟨U+2069⟩");
        assert_eq!(visible("Zürich 東京"), "Zürich 東京");
    }
}
