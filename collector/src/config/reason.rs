//! Contact-reason rules of `[experience.reason_rules]`: which free-text reasons speak about an
//! incident category (a strong link).

/// One word of a [`ReasonRule`]: exact, or a prefix (written with a trailing `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleWord {
    text: String,
    prefix: bool,
}

/// A contact-reason rule: words that must all occur in the reason, in any order. Reasons and
/// rules are compared case-insensitively, split into words at every character that is not a
/// letter or digit ("No_Internet!" is the words `no`, `internet`); a rule word ending in `*`
/// matches any word it begins (`load*`: "load", "loads", "loading").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonRule {
    words: Vec<RuleWord>,
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '*')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl ReasonRule {
    /// Parses a rule; refuses one without words or with a `*` that is not at a word's end.
    pub fn parse(rule: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for w in words(rule) {
            let (text, prefix) = match w.strip_suffix('*') {
                Some(t) => (t.to_owned(), true),
                None => (w.clone(), false),
            };
            if text.is_empty() || text.contains('*') {
                return Err(format!("{w:?}: `*` only ends a word of letters or digits"));
            }
            out.push(RuleWord { text, prefix });
        }
        if out.is_empty() {
            return Err("a rule needs at least one word".into());
        }
        Ok(Self { words: out })
    }

    /// Whether every word of the rule occurs in `reason`.
    pub fn matches(&self, reason: &str) -> bool {
        let reason: Vec<String> = reason
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        self.words.iter().all(|rw| {
            reason.iter().any(|w| {
                if rw.prefix {
                    w.starts_with(&rw.text)
                } else {
                    *w == rw.text
                }
            })
        })
    }
}
