//! Asking for boxes in each family's own phrasing, so people need not know
//! that Qwen2-VL wants its object wrapped in reference tokens while the
//! later families answer in JSON when asked for it.

use super::GroundingFamily;

/// Longest description of the thing to find, in characters.
const MAX_THING_CHARS: usize = 200;

impl GroundingFamily {
    /// A question asking the model to find every `thing` in the image and
    /// answer with boxes in its family's format. `None` when `thing` is
    /// empty once cleaned.
    pub fn locate_prompt(self, thing: &str) -> Option<String> {
        let thing = clean_thing(thing);
        if thing.is_empty() {
            return None;
        }
        Some(match self {
            // Qwen2-VL learned grounding with the reference wrapped in its
            // special tokens; it answers with box spans on its own.
            GroundingFamily::Qwen2Vl => format!(
                "Find <|object_ref_start|>{thing}<|object_ref_end|> in the image and give its bounding box."
            ),
            GroundingFamily::Qwen25Vl | GroundingFamily::Qwen3Vl => format!(
                "Locate every {thing} in the image and output the bbox coordinates in JSON format, \
                 as a list of {{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"...\"}} objects."
            ),
        })
    }
}

/// One line of plain text: no control characters, no special-token
/// delimiters (a description must not open or close a token span), capped.
fn clean_thing(thing: &str) -> String {
    let no_tokens = thing.replace("<|", "").replace("|>", "");
    let one_line: String = no_tokens
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_THING_CHARS)
        .collect();
    one_line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_is_asked_in_its_own_format() {
        let q2 = GroundingFamily::Qwen2Vl.locate_prompt("red car").unwrap();
        assert_eq!(
            q2,
            "Find <|object_ref_start|>red car<|object_ref_end|> in the image and give its bounding box."
        );
        for family in [GroundingFamily::Qwen25Vl, GroundingFamily::Qwen3Vl] {
            let q = family.locate_prompt("红色的车").unwrap();
            assert!(
                q.contains("every 红色的车") && q.contains("bbox_2d") && q.contains("JSON"),
                "{q}"
            );
        }
    }

    #[test]
    fn descriptions_are_cleaned_and_empty_ones_refused() {
        let q = GroundingFamily::Qwen2Vl
            .locate_prompt("  the <|object_ref_end|>cat\nbehind\tthe sofa ")
            .unwrap();
        assert!(
            q.contains("ref_start|>the object_ref_endcat behind the sofa<|object"),
            "{q}"
        );
        assert_eq!(GroundingFamily::Qwen3Vl.locate_prompt(" \n\t"), None);
        assert_eq!(GroundingFamily::Qwen3Vl.locate_prompt("<||>"), None);
        let long = "x".repeat(1000);
        let q = GroundingFamily::Qwen3Vl.locate_prompt(&long).unwrap();
        assert!(q.len() < 400);
    }
}
