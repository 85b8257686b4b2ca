//! Bad input gets an error, never a panic: every parser meets many pseudo-random strings
//! built from the characters that matter to it, multi-byte ones included.

use apimachinery::{fields, labels, quantity::Quantity};

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn string(&mut self, alphabet: &[&str], max_len: usize) -> String {
        let len = (self.next() % (max_len as u64 + 1)) as usize;
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

const QUANTITY: &[&str] = &[
    "0",
    "1",
    "5",
    "9",
    ".",
    "+",
    "-",
    "e",
    "E",
    "i",
    "n",
    "u",
    "m",
    "k",
    "K",
    "M",
    "G",
    "T",
    "P",
    "Ki",
    "Mi",
    "Ei",
    "é",
    "\u{0}",
    " ",
    "99999999999999999999",
];
const SELECTOR: &[&str] = &[
    "a", "b", "x.io/", "=", "==", "!=", "!", ",", "(", ")", " ", "in", "notin", ">", "<", "1", "-",
    "_", ".", "\\", "é", "ñ", "\u{0}", "€",
];

#[test]
fn quantity_parse_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..50_000 {
        let input = rng.string(QUANTITY, 12);
        if let Ok(q) = Quantity::parse(&input) {
            // Whatever parses must format and re-parse to the same value.
            let again =
                Quantity::parse(&q.to_string()).unwrap_or_else(|e| panic!("{input:?} → {q} → {e}"));
            assert_eq!(q, again, "{input:?}");
        }
    }
}

#[test]
fn label_and_field_selectors_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..50_000 {
        let input = rng.string(SELECTOR, 16);
        if let Ok(selector) = labels::Selector::parse(&input) {
            let text = selector.to_string();
            assert!(
                labels::Selector::parse(&text).is_ok(),
                "{input:?} printed as unparsable {text:?}"
            );
        }
        let _ = fields::Selector::parse(&input);
        let _ = fields::unescape_value(&input);
        let _ = labels::is_qualified_name(&input);
        let _ = labels::is_valid_label_value(&input);
    }
}
