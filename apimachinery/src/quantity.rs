//! `resource.Quantity`: the fixed-point numbers used for resource requests, limits,
//! capacities and quotas, mirroring upstream `k8s.io/apimachinery/pkg/api/resource`.
//!
//! A quantity is held as an exact decimal (`mantissa * 10^scale`, never a float) plus
//! the suffix family it was written in, so that it re-serialises the way upstream's
//! `Quantity.String()` does: `1.5` becomes `1500m`, `1.5Gi` becomes `1536Mi`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a quantity; the messages are upstream's `ErrFormatWrong`,
/// `ErrNumeric` and `ErrSuffix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is empty or has characters outside the quantity grammar.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    /// The numeric part could not be read (e.g. `Pi` with no digits at all).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not one of the known SI, binary or exponent suffixes.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// The suffix family a quantity is written in, as upstream's `resource.Format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `12e6`: a power-of-ten exponent.
    DecimalExponent,
    /// `12Mi`: powers of 1024 (`Ki` … `Ei`).
    BinarySI,
    /// `12M`: powers of 1000 (`n u m "" k M G T P E`).
    #[default]
    DecimalSI,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::DecimalExponent => "DecimalExponent",
            Format::BinarySI => "BinarySI",
            Format::DecimalSI => "DecimalSI",
        })
    }
}

/// Mantissas stay below 10^38 so that every alignment done by `cmp` fits in an i128.
const MAX_DIGITS: usize = 38;
/// Upstream rounds every parsed value up to nano precision (`resource.Nano`).
const NANO_SCALE: i64 = -9;
/// Upstream caps binary-SI quantities at the largest int64 (`maxAllowed`).
const MAX_ALLOWED: &str = "9223372036854775807";

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn digit_count(mut v: u128) -> u32 {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// An exact decimal `m * 10^s` with `|m| < 10^38`.
#[derive(Debug, Clone, Copy)]
struct Amount {
    m: i128,
    s: i32,
}

impl Amount {
    const ZERO: Amount = Amount { m: 0, s: 0 };

    /// Moves trailing zeros of the mantissa into the scale, so equal values look alike.
    fn normalize(self) -> Amount {
        if self.m == 0 {
            return Amount::ZERO;
        }
        let mut a = self;
        while a.m % 10 == 0 && a.s < i32::MAX {
            a.m /= 10;
            a.s += 1;
        }
        a
    }

    fn cmp_value(self, other: Amount) -> Ordering {
        let (a, b) = (self.normalize(), other.normalize());
        match a.m.signum().cmp(&b.m.signum()) {
            Ordering::Equal => {}
            o => return o,
        }
        if a.m == 0 {
            return Ordering::Equal;
        }
        let (ma, mb) = (a.m.unsigned_abs(), b.m.unsigned_abs());
        // Compare the position of the most significant digit first, then the digits.
        let top_a = i64::from(digit_count(ma)) + i64::from(a.s);
        let top_b = i64::from(digit_count(mb)) + i64::from(b.s);
        let mag = if top_a != top_b {
            top_a.cmp(&top_b)
        } else if a.s >= b.s {
            // Same leading position, so the shift is below 38 digits and cannot overflow.
            let shift = (i64::from(a.s) - i64::from(b.s)) as u32;
            (ma * 10u128.pow(shift)).cmp(&mb)
        } else {
            let shift = (i64::from(b.s) - i64::from(a.s)) as u32;
            ma.cmp(&(mb * 10u128.pow(shift)))
        };
        if a.m > 0 { mag } else { mag.reverse() }
    }

    /// The mantissa at scale `t >= s`, rounded half away from zero.
    fn rounded_to(self, t: i64) -> i128 {
        let diff = t - i64::from(self.s);
        if diff <= 0 {
            return self.m;
        }
        let Some(p) = u32::try_from(diff).ok().and_then(pow10) else {
            return 0;
        };
        let (q, r) = (self.m / p, self.m % p);
        if r.unsigned_abs() * 2 >= p.unsigned_abs() {
            q + self.m.signum()
        } else {
            q
        }
    }

    /// The mantissa at scale `t <= s`, or `None` on overflow.
    fn widened_to(self, t: i64) -> Option<i128> {
        let diff = u32::try_from(i64::from(self.s) - t).ok()?;
        self.m.checked_mul(pow10(diff)?)
    }

    /// Exact when the sum fits in 38 digits (any realistic quantity); otherwise the
    /// sum is rounded to 38 significant digits, where upstream would use a big decimal.
    fn add(self, other: Amount) -> Amount {
        let (a, b) = (self.normalize(), other.normalize());
        if a.m == 0 {
            return b;
        }
        if b.m == 0 {
            return a;
        }
        let lo = i64::from(a.s.min(b.s));
        let hi = i64::from(a.s.max(b.s));
        let limit = pow10(MAX_DIGITS as u32).unwrap_or(i128::MAX);
        let mut t = lo.max(hi - MAX_DIGITS as i64);
        loop {
            let ma = a
                .widened_to(t)
                .or_else(|| (i64::from(a.s) <= t).then(|| a.rounded_to(t)));
            let mb = b
                .widened_to(t)
                .or_else(|| (i64::from(b.s) <= t).then(|| b.rounded_to(t)));
            if let (Some(ma), Some(mb)) = (ma, mb) {
                if let Some(sum) = ma.checked_add(mb) {
                    if sum.unsigned_abs() < limit.unsigned_abs() {
                        if let Ok(s) = i32::try_from(t) {
                            return Amount { m: sum, s }.normalize();
                        }
                    }
                }
            }
            if t >= i64::from(i32::MAX) {
                // Unreachable for values this type can hold; keep the larger operand.
                return if a.cmp_value(b).is_ge() == (a.m > 0) {
                    a
                } else {
                    b
                };
            }
            t += 1;
        }
    }

    fn neg(self) -> Amount {
        Amount {
            m: -self.m,
            s: self.s,
        }
    }

    /// The value at scale `t`, rounded away from zero and saturated to i64, as
    /// upstream's `ScaledValue` (which instead overflows silently).
    fn scaled_value(self, t: i64) -> i64 {
        let a = self.normalize();
        if a.m == 0 {
            return 0;
        }
        let saturate = |neg: bool| if neg { i64::MIN } else { i64::MAX };
        let v = if i64::from(a.s) >= t {
            match a.widened_to(t) {
                Some(v) => v,
                None => return saturate(a.m < 0),
            }
        } else {
            let diff = t - i64::from(a.s);
            match u32::try_from(diff).ok().and_then(pow10) {
                Some(p) => {
                    let (q, r) = (a.m / p, a.m % p);
                    if r != 0 { q + a.m.signum() } else { q }
                }
                // |value| is below one unit of the target scale: rounds to +-1.
                None => a.m.signum(),
            }
        };
        i64::try_from(v).unwrap_or_else(|_| saturate(v < 0))
    }
}

/// A fixed-point quantity such as `500m`, `1Gi` or `129e6`, as upstream's
/// `resource.Quantity`.
///
/// Equality, ordering and hashing compare values, not spelling: `1Gi == 1024Mi`.
#[derive(Debug, Clone)]
pub struct Quantity {
    amount: Amount,
    format: Format,
    /// The parsed text when upstream would keep it verbatim (see `parse`); upstream's
    /// `String()` returns that text, so `1E3` and `+1` round-trip unchanged.
    original: Option<String>,
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity {
            amount: Amount::ZERO,
            format: Format::DecimalSI,
            original: None,
        }
    }
}

/// The pieces of a quantity string, as upstream's `parseQuantityString` splits them.
struct Scanned<'a> {
    positive: bool,
    /// Whether the numeric part has at least one digit.
    has_digits: bool,
    /// Integer digits without leading zeros, `"0"` when none remain.
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn scan(s: &str) -> Result<Scanned<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let zeros_start = pos;
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos == end {
        // Only a sign and zeros (or nothing at all after the sign): upstream reads 0.
        return Ok(Scanned {
            positive,
            has_digits: true,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let had_zeros = pos > zeros_start;
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut has_digits = had_zeros || pos > num_start;
    let num = if pos > num_start {
        &s[num_start..pos]
    } else {
        "0"
    };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        has_digits |= !denom.is_empty();
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Scanned {
        positive,
        has_digits,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// Maps a suffix to (base, exponent, format), as upstream's `quantitySuffixer.interpret`.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let e: i64 = rest.parse().ok()?;
            // Upstream converts the int64 exponent with int32(), wrapping; so do we.
            Some((10, e as i32, Format::DecimalExponent))
        }
    }
}

/// An exact non-negative decimal `digits * 10^exp` for the slow parse path, where the
/// digit string may be longer than any machine integer.
struct Digits {
    d: Vec<u8>,
    exp: i64,
}

impl Digits {
    fn trim(&mut self) {
        let lead = self.d.iter().take_while(|&&x| x == 0).count();
        self.d.drain(..lead);
        while self.d.last() == Some(&0) {
            self.d.pop();
            self.exp += 1;
        }
    }

    fn is_zero(&self) -> bool {
        self.d.is_empty()
    }

    fn mul_small(&mut self, f: u32) {
        let mut carry: u64 = 0;
        for x in self.d.iter_mut().rev() {
            let v = u64::from(*x) * u64::from(f) + carry;
            *x = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            self.d.insert(0, (carry % 10) as u8);
            carry /= 10;
        }
    }

    /// Adds one unit in the last place.
    fn increment(&mut self) {
        for x in self.d.iter_mut().rev() {
            if *x == 9 {
                *x = 0;
            } else {
                *x += 1;
                return;
            }
        }
        self.d.insert(0, 1);
    }

    /// Keeps the first `keep` digits, rounding away from zero if anything was dropped.
    fn round_up_keeping(&mut self, keep: usize) {
        if self.d.len() <= keep {
            return;
        }
        let dropped = self.d.len() - keep;
        let nonzero = self.d[keep..].iter().any(|&x| x != 0);
        self.d.truncate(keep);
        self.exp += dropped as i64;
        if nonzero {
            self.increment();
        }
        self.trim();
    }

    /// Rounds away from zero to nano precision, as upstream's `inf.RoundUp` to `Nano`.
    fn round_up_to_nano(&mut self) {
        self.trim();
        if self.is_zero() || self.exp >= NANO_SCALE {
            return;
        }
        let drop = NANO_SCALE - self.exp;
        let len = self.d.len() as i64;
        if drop >= len {
            self.d = vec![1];
            self.exp = NANO_SCALE;
        } else {
            self.round_up_keeping((len - drop) as usize);
        }
    }

    /// Digits before the decimal point (may be zero or negative for values below 1).
    fn integer_digits(&self) -> i64 {
        self.d.len() as i64 + self.exp
    }

    fn exceeds_max_allowed(&self) -> bool {
        let int_digits = self.integer_digits();
        let max_len = MAX_ALLOWED.len() as i64;
        if int_digits != max_len {
            return int_digits > max_len;
        }
        let int_part: Vec<u8> = (0..max_len as usize)
            .map(|i| self.d.get(i).copied().unwrap_or(0))
            .collect();
        let max: Vec<u8> = MAX_ALLOWED.bytes().map(|c| c - b'0').collect();
        match int_part.cmp(&max) {
            Ordering::Equal => self.exp < 0,
            o => o == Ordering::Greater,
        }
    }

    fn into_amount(mut self, positive: bool) -> Result<Amount, QuantityError> {
        self.trim();
        if self.is_zero() {
            return Ok(Amount::ZERO);
        }
        // Beyond 38 significant digits we round up (upstream keeps a big decimal).
        self.round_up_keeping(MAX_DIGITS);
        let mut m: i128 = 0;
        for &x in &self.d {
            m = m * 10 + i128::from(x);
        }
        let mut exp = self.exp;
        while exp > i64::from(i32::MAX) {
            m = m.checked_mul(10).ok_or(QuantityError::Numeric)?;
            if m.unsigned_abs() >= pow10(MAX_DIGITS as u32).unwrap_or(i128::MAX).unsigned_abs() {
                return Err(QuantityError::Numeric);
            }
            exp -= 1;
        }
        let s = i32::try_from(exp).map_err(|_| QuantityError::Numeric)?;
        Ok(Amount {
            m: if positive { m } else { -m },
            s,
        })
    }
}

impl Quantity {
    /// Parses a quantity string as upstream's `resource.ParseQuantity`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Quantity {
                original: Some(s.to_owned()),
                ..Quantity::default()
            });
        }
        let sc = scan(s)?;
        let (base, exponent, mut format) =
            interpret_suffix(sc.suffix).ok_or(QuantityError::Suffix)?;

        // Upstream's fast path handles short numbers in an int64; only values it takes
        // are candidates for keeping the input text, so mirror its conditions exactly.
        let digits_len = (sc.num.len() + sc.denom.len()) as i64;
        let exp = i64::from(exponent);
        let (precision, scale) = if base == 10 {
            (18 - digits_len, exp - sc.denom.len() as i64)
        } else if exponent >= 0 && sc.denom.is_empty() {
            (15 - sc.num.len() as i64 - exp * 3 / 10 - 1, 0)
        } else {
            (-1, 0)
        };
        if precision >= 0 && scale >= NANO_SCALE {
            if let Some(q) = Self::fast_path(s, &sc, base, exponent, format, scale) {
                return Ok(q);
            }
        }

        if !sc.has_digits {
            return Err(QuantityError::Numeric);
        }
        let mut d = Digits {
            d: sc
                .num
                .bytes()
                .chain(sc.denom.bytes())
                .map(|c| c - b'0')
                .collect(),
            exp: -(sc.denom.len() as i64),
        };
        d.trim();
        if base == 10 {
            d.exp += exp;
        } else {
            for _ in 0..exponent / 10 {
                d.mul_small(1024);
            }
        }
        d.round_up_to_nano();
        if format == Format::BinarySI {
            if d.exceeds_max_allowed() {
                d = Digits {
                    d: MAX_ALLOWED.bytes().map(|c| c - b'0').collect(),
                    exp: 0,
                };
            }
            if !d.is_zero() && d.integer_digits() <= 0 {
                // Upstream: binary values below one are shown in decimal to avoid rounding.
                format = Format::DecimalSI;
            }
        }
        Ok(Quantity {
            amount: d.into_amount(sc.positive)?,
            format,
            original: None,
        })
    }

    fn fast_path(
        s: &str,
        sc: &Scanned<'_>,
        base: u32,
        exponent: i32,
        format: Format,
        scale: i64,
    ) -> Option<Quantity> {
        let shifted = format!("{}{}", sc.num, sc.denom);
        let value: i64 = shifted.parse().ok()?;
        let mantissa: i64 = if base == 2 {
            1i64.checked_shl(exponent as u32)?
        } else {
            1
        };
        let result = value.checked_mul(mantissa)?;
        let scale = i32::try_from(scale).ok()?;
        // Upstream keeps the input verbatim when it already looks canonical; leading
        // zeros and a '+' sign slip through that check and are echoed back as written.
        let keep = if base == 2 {
            exponent % 10 == 0 && value & 0x07 != 0
        } else {
            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
        };
        Some(Quantity {
            amount: Amount {
                m: i128::from(if sc.positive { result } else { -result }),
                s: scale,
            },
            format,
            original: keep.then(|| s.to_owned()),
        })
    }

    /// `value` in `format`, as upstream's `NewQuantity`.
    pub fn new(value: i64, format: Format) -> Quantity {
        Quantity {
            amount: Amount {
                m: i128::from(value),
                s: 0,
            },
            format,
            original: None,
        }
    }

    /// `value / 1000` in `format`, as upstream's `NewMilliQuantity`.
    pub fn new_milli(value: i64, format: Format) -> Quantity {
        Self::new_scaled_with(value, -3, format)
    }

    /// `value * 10^scale` in decimal SI, as upstream's `NewScaledQuantity`.
    pub fn new_scaled(value: i64, scale: i32) -> Quantity {
        Self::new_scaled_with(value, scale, Format::DecimalSI)
    }

    fn new_scaled_with(value: i64, scale: i32, format: Format) -> Quantity {
        Quantity {
            amount: Amount {
                m: i128::from(value),
                s: scale,
            },
            format,
            original: None,
        }
    }

    /// The suffix family this quantity is serialised in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.m == 0
    }

    /// -1, 0 or 1 by the sign of the value.
    pub fn signum(&self) -> i32 {
        self.amount.m.signum() as i32
    }

    /// The value rounded away from zero to an integer, as upstream's `Value()`;
    /// saturates at the i64 bounds where upstream would overflow.
    pub fn value(&self) -> i64 {
        self.amount.scaled_value(0)
    }

    /// The value in thousandths rounded away from zero, as upstream's `MilliValue()`;
    /// saturates at the i64 bounds where upstream would overflow.
    pub fn milli_value(&self) -> i64 {
        self.amount.scaled_value(-3)
    }

    /// The value in units of `10^scale` rounded away from zero, as upstream's
    /// `ScaledValue`; saturating.
    pub fn scaled_value(&self, scale: i32) -> i64 {
        self.amount.scaled_value(i64::from(scale))
    }

    /// The value as an i64 when it is an integer in range, as upstream's `AsInt64`.
    pub fn as_i64(&self) -> Option<i64> {
        let a = self.amount.normalize();
        if a.s < 0 {
            return None;
        }
        a.widened_to(0).and_then(|v| i64::try_from(v).ok())
    }

    /// Compares with an integer, as upstream's `CmpInt64`.
    pub fn cmp_i64(&self, y: i64) -> Ordering {
        self.amount.cmp_value(Amount {
            m: i128::from(y),
            s: 0,
        })
    }

    /// Replaces the value, keeping the format, as upstream's `SetScaled`.
    pub fn set_scaled(&mut self, value: i64, scale: i32) {
        self.amount = Amount {
            m: i128::from(value),
            s: scale,
        };
        self.original = None;
    }

    fn canonical(&self) -> String {
        let a = self.amount.normalize();
        if a.m == 0 {
            return "0".to_owned();
        }
        let sign = if a.m < 0 { "-" } else { "" };
        if self.format == Format::BinarySI
            && (self.cmp_i64(-1024).is_le() || self.cmp_i64(1024).is_ge())
            && a.s >= 0
        {
            if let Some(mut v) = a.widened_to(0).map(i128::unsigned_abs) {
                let mut e = 0usize;
                while v % 1024 == 0 {
                    v /= 1024;
                    e += 1;
                }
                // Beyond Ei upstream emits no suffix (losing the magnitude); we fall
                // back to decimal SI instead.
                if let Some(suffix) = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].get(e) {
                    return format!("{sign}{v}{suffix}");
                }
            }
        }
        // Decimal: lower the exponent to a multiple of three, padding the mantissa.
        let s = i64::from(a.s);
        let pad = s.rem_euclid(3);
        let exp = s - pad;
        let mut digits = a.m.unsigned_abs().to_string();
        digits.extend(std::iter::repeat_n('0', pad as usize));
        let si = match exp {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (self.format, si) {
            (Format::DecimalExponent, _) | (_, None) => {
                // Upstream v1.33 drops the suffix outside n..E (so 1e21 prints "1");
                // later upstream falls back to the exponent form, as we do.
                if exp == 0 {
                    format!("{sign}{digits}")
                } else {
                    format!("{sign}{digits}e{exp}")
                }
            }
            (_, Some(suffix)) => format!("{sign}{digits}{suffix}"),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    /// Upstream's `String()`: the kept input text, else the canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.original {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.canonical()),
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.amount.cmp_value(other.amount)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let a = self.amount.normalize();
        a.m.hash(state);
        a.s.hash(state);
    }
}

impl AddAssign<&Quantity> for Quantity {
    /// As upstream's `Add`: a zero receiver takes the format of `rhs`.
    fn add_assign(&mut self, rhs: &Quantity) {
        if self.is_zero() {
            self.format = rhs.format;
        }
        self.amount = self.amount.add(rhs.amount);
        self.original = None;
    }
}

impl AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self += &rhs;
    }
}

impl SubAssign<&Quantity> for Quantity {
    /// As upstream's `Sub`: a zero receiver takes the format of `rhs`.
    fn sub_assign(&mut self, rhs: &Quantity) {
        if self.is_zero() {
            self.format = rhs.format;
        }
        self.amount = self.amount.add(rhs.amount.neg());
        self.original = None;
    }
}

impl SubAssign for Quantity {
    fn sub_assign(&mut self, rhs: Quantity) {
        *self -= &rhs;
    }
}

impl Add for Quantity {
    type Output = Quantity;

    fn add(mut self, rhs: Quantity) -> Quantity {
        self += &rhs;
        self
    }
}

impl Sub for Quantity {
    type Output = Quantity;

    fn sub(mut self, rhs: Quantity) -> Quantity {
        self -= &rhs;
        self
    }
}

impl Neg for Quantity {
    type Output = Quantity;

    fn neg(self) -> Quantity {
        Quantity {
            amount: self.amount.neg(),
            format: self.format,
            original: None,
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// Accepts a string or a JSON number (upstream strips the quotes and parses the
    /// rest), trimming surrounding whitespace; `null` reads as zero, as upstream.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;

        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string or number")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v.trim()).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom(QuantityError::FormatWrong));
                }
                // Shortest round-trip decimal text, never exponent notation.
                self.visit_str(&v.to_string())
            }

            fn visit_unit<E: de::Error>(self) -> Result<Quantity, E> {
                Ok(Quantity::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<Quantity, E> {
                Ok(Quantity::default())
            }
        }

        deserializer.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Builds the expected value `m * 10^s` for comparisons.
    fn dec(m: i64, s: i32, format: Format) -> Quantity {
        Quantity::new_scaled_with(m, s, format)
    }

    #[test]
    fn parse_values_and_formats_like_upstream_table() {
        use Format::*;
        // upstream quantity_test.go TestQuantityParse
        let table: &[(&str, Quantity)] = &[
            ("0", dec(0, 0, DecimalSI)),
            ("0n", dec(0, 0, DecimalSI)),
            ("0Ki", dec(0, 0, BinarySI)),
            ("0Ti", dec(0, 0, BinarySI)),
            ("1", dec(1, 0, DecimalSI)),
            ("1Ki", dec(1024, 0, BinarySI)),
            ("7Mi", dec(7 * 1024 * 1024, 0, BinarySI)),
            ("5Ti", dec(5 << 40, 0, BinarySI)),
            ("4Pi", dec(4 << 50, 0, BinarySI)),
            ("3Ei", dec(3 << 60, 0, BinarySI)),
            ("100Ti", dec(100 << 40, 0, BinarySI)),
            ("5n", dec(5, -9, DecimalSI)),
            ("4u", dec(4, -6, DecimalSI)),
            ("3m", dec(3, -3, DecimalSI)),
            ("50k", dec(5, 4, DecimalSI)),
            ("300T", dec(3, 14, DecimalSI)),
            ("1E", dec(1, 18, DecimalSI)),
            ("1E-3", dec(1, -3, DecimalExponent)),
            ("1e3", dec(1, 3, DecimalExponent)),
            ("1E18", dec(1, 18, DecimalExponent)),
            ("1e14", dec(1, 14, DecimalExponent)),
            ("100.035k", dec(100035, 0, DecimalSI)),
            ("0.0005k", dec(5, -1, DecimalSI)),
            ("0.00500", dec(5, -3, DecimalSI)),
            ("0.5e-2", dec(5, -3, DecimalExponent)),
            ("1.3E+6", dec(13, 5, DecimalExponent)),
            ("1.53E12", dec(153, 10, DecimalExponent)),
            ("6.987654321G", dec(6987654321, 0, DecimalSI)),
            ("1.01E", dec(101, 16, DecimalSI)),
            ("3.001n", dec(4, -9, DecimalSI)),
            ("1.1E-9", dec(2, -9, DecimalExponent)),
            ("0.0000000001", dec(1, -9, DecimalSI)),
            ("0.00000000050", dec(1, -9, DecimalSI)),
            ("0.5e-9", dec(1, -9, DecimalExponent)),
            ("0.9n", dec(1, -9, DecimalSI)),
            ("0.00000012345", dec(124, -9, DecimalSI)),
            ("9Ei", dec(i64::MAX, 0, BinarySI)),
            ("9223372036854775807Ki", dec(i64::MAX, 0, BinarySI)),
            ("12E", dec(12, 18, DecimalSI)),
            ("100.035Ki", dec(10243584, -2, BinarySI)),
            ("0.5Mi", dec(512 * 1024, 0, BinarySI)),
            ("0.05Gi", dec(536870912, -1, BinarySI)),
            ("0.025Ti", dec(274877906944, -1, BinarySI)),
            ("0.000000000001Ki", dec(2, -9, DecimalSI)),
            (".001", dec(1, -3, DecimalSI)),
            (".0001k", dec(100, -3, DecimalSI)),
            ("1.", dec(1, 0, DecimalSI)),
            ("1.G", dec(1, 9, DecimalSI)),
        ];
        for (input, want) in table {
            for (prefix, neg) in [("", false), ("-", true), ("+", false)] {
                let text = format!("{prefix}{input}");
                let got = q(&text);
                let want = if neg { -want.clone() } else { want.clone() };
                assert_eq!(got, want, "{text}: got {got}, want {want}");
                assert_eq!(got.format(), want.format(), "{text}");
            }
        }
    }

    #[test]
    fn invalid_strings_fail_with_upstream_errors() {
        // upstream TestQuantityParse invalid list
        for s in [
            "1.1.M",
            "1+1.0M",
            "0.1am",
            "aoeu",
            " 1",
            "1 ",
            "Non-Numeric",
            "",
        ] {
            assert_eq!(
                Quantity::parse(s).unwrap_err(),
                QuantityError::FormatWrong,
                "{s}"
            );
        }
        for s in ["0.1mi", ".5i", "1i", "-3.01i", "-3.01e-", "1e", "1eKi"] {
            assert_eq!(
                Quantity::parse(s).unwrap_err(),
                QuantityError::Suffix,
                "{s}"
            );
        }
        // no digits and a suffix that forces upstream's big-decimal path
        assert_eq!(Quantity::parse("Pi").unwrap_err(), QuantityError::Numeric);
        assert_eq!(
            QuantityError::FormatWrong.to_string(),
            "quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn degenerate_inputs_read_as_zero_like_upstream() {
        // upstream's scanner treats a missing number as 0 on its int64 path
        for s in [".", "-.", "+", "-", "Ki", "e3", "m", "-0", "000"] {
            assert!(q(s).is_zero(), "{s}");
            assert_eq!(q(s).to_string(), "0", "{s}");
        }
    }

    #[test]
    fn canonical_string_forms() {
        // upstream TestQuantityString (expect, alternate spelling)
        let table = [
            ("1Gi", "1024Mi"),
            ("300Mi", "307200Ki"),
            ("1001Gi", "1025024Mi"),
            ("1Ti", "1024Gi"),
            ("1G", "1000M"),
            ("1G", "0.001T"),
            ("1m", "1000u"),
            ("1080m", "1.08"),
            ("1080m", "1080000000n"),
            ("1e9", ".001e12"),
            ("1e-3", "0.001e0"),
            ("1e-9", "1000e-12"),
            ("0", "00"),
            ("500m", "0.5"),
            ("1500m", "1.5"),
            ("1536Mi", "1.5Gi"),
            ("1Gi", "1024Mi"),
            ("1000Mi", "1000Mi"),
            ("129e6", "129e6"),
            ("100m", "100m"),
            ("100m", "0.1"),
        ];
        for (want, input) in table {
            assert_eq!(q(input).to_string(), want, "{input}");
            assert_eq!(
                q(&format!("-{input}")).to_string().trim_start_matches('-'),
                want
            );
            assert_eq!(q(want).to_string(), want);
        }
        // upstream TestQuantityParseEmit
        for (input, want) in [
            ("1Ki", "1Ki"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
        ] {
            assert_eq!(q(input).to_string(), want, "{input}");
            assert_eq!(q(&format!("-{input}")).to_string(), format!("-{want}"));
        }
    }

    #[test]
    fn constructed_quantities_format_like_upstream() {
        use Format::*;
        let cases = [
            (dec(6 * 1024, 0, BinarySI), "6Ki"),
            (dec(5, 0, BinarySI), "5"),
            (dec(500, -3, BinarySI), "500m"),
            (dec(1000, 6, DecimalSI), "1G"),
            (dec(108, -2, DecimalSI), "1080m"),
            (dec(10800, -4, DecimalSI), "1080m"),
            (dec(1234567, -3, BinarySI), "1234567m"),
            (dec(1025, 0, BinarySI), "1025"),
            (dec(80, -3, DecimalExponent), "80e-3"),
            (dec(300, 6, DecimalExponent), "300e6"),
            (dec(10800, -10, DecimalSI), "1080n"),
            (Quantity::new_milli(1024, BinarySI), "1024m"),
            (Quantity::new_milli(1_000_000, DecimalExponent), "1e3"),
            (Quantity::new(1_234_000, DecimalSI), "1234k"),
            (Quantity::new(1024 * 1024, BinarySI), "1Mi"),
            (Quantity::new_scaled(1000, -9), "1u"),
            (Quantity::new_scaled(0, -3), "0"),
        ];
        for (quantity, want) in cases {
            assert_eq!(quantity.to_string(), want);
            assert_eq!(
                (-quantity).to_string(),
                if want == "0" {
                    "0".to_owned()
                } else {
                    format!("-{want}")
                }
            );
        }
    }

    #[test]
    fn input_text_kept_when_upstream_keeps_it() {
        // upstream caches the input in Quantity.s on its fast path; String() echoes it
        assert_eq!(q("1E3").to_string(), "1E3");
        assert_eq!(q("+1").to_string(), "+1");
        assert_eq!(q("1e+3").to_string(), "1e+3");
        // not kept: trailing "000", scale not a multiple of 3, or leading zero digit
        assert_eq!(q("1000m").to_string(), "1");
        assert_eq!(q("1.0").to_string(), "1");
        assert_eq!(q("8Ki").to_string(), "8Ki");
        // any arithmetic drops the kept text
        let mut x = q("+1");
        x += &q("0");
        assert_eq!(x.to_string(), "1");
    }

    #[test]
    fn huge_decimal_values_keep_their_magnitude() {
        // upstream v1.33 prints "1" for 1000E (kubernetes#141249); later fixed to e21
        assert_eq!(q("1000E").to_string(), "1e21");
        assert_eq!(q("100E").to_string(), "100E");
        assert_eq!(Quantity::new_scaled(1, -12).to_string(), "1e-12");
        assert_eq!(q("1e2147483647").to_string(), "10e2147483646");
    }

    #[test]
    fn compare_orders_by_value() {
        assert!(q("100m") > q("50m"));
        assert!(q("10000T") > q("100Gi"));
        assert_eq!(q("0"), q("0"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("-1") < q("1n"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e30") > q("999999999999999999999999999999"));
        assert!(q("1e-3") < q("1e30"));
        assert_eq!(
            dec(90, -1, Format::DecimalSI).cmp(&dec(901, -2, Format::DecimalSI)),
            Ordering::Less
        );
        assert_eq!(q("1.5").cmp_i64(1), Ordering::Greater);
    }

    #[test]
    fn add_and_sub_preserve_suffix_through_zero() {
        // upstream TestQuantityAddZeroPreservesSuffix / SubZero
        for s in ["100m", "1Gi"] {
            let v = q(s);
            let mut a = v.clone();
            a += &q("0");
            assert_eq!(a.to_string(), s);
            let mut b = q("0");
            b += &v;
            assert_eq!(b.to_string(), s);
            let mut c = q("0");
            c -= &v;
            assert_eq!(c.to_string(), format!("-{s}"));
        }
        assert_eq!((q("10") - q("1Ki")).to_string(), "-1014");
        assert_eq!((q("1Gi") + q("512Mi")).to_string(), "1536Mi");
        assert_eq!((q("100m") + q("1.9")).to_string(), "2");
        assert_eq!((q("1") - q("1")).to_string(), "0");
    }

    #[test]
    fn add_sub_round_trip_across_scales() {
        let mut acc = Quantity::default();
        let vals: Vec<(i64, i32)> = (0..50)
            .map(|i| (i64::MAX / (i + 3), (i % 10) as i32 - 5))
            .collect();
        for &(v, s) in &vals {
            acc += Quantity::new_scaled(v, s);
        }
        for &(v, s) in &vals {
            acc -= Quantity::new_scaled(v, s);
        }
        assert!(acc.is_zero(), "{acc}");
    }

    #[test]
    fn value_and_milli_value_round_away_from_zero() {
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1e30").value(), i64::MAX);
        assert_eq!(q("-1e30").value(), i64::MIN);
        // upstream TestScaledValue
        assert_eq!(Quantity::new_scaled(1, -9).scaled_value(0), 1);
        assert_eq!(Quantity::new_scaled(1, 2).scaled_value(-2), 10000);
        assert_eq!(q("1.5").as_i64(), None);
        assert_eq!(q("2k").as_i64(), Some(2000));
    }

    #[test]
    fn very_long_inputs_do_not_panic() {
        let long = format!("0.{}1Ki", "0".repeat(5000));
        assert_eq!(q(&long).to_string(), "1n");
        let digits = "9".repeat(100);
        assert_eq!(
            q(&format!("{digits}Ki")),
            dec(i64::MAX, 0, Format::BinarySI)
        );
        assert!(q(&digits) > q("1e98"));
        assert_eq!(q("1e-2000000000").to_string(), "1e-9");
        let _ = Quantity::parse(&"1.".repeat(1000));
    }

    #[test]
    fn serde_accepts_strings_and_numbers() {
        let x: Quantity = serde_json::from_str("\"1.5Gi\"").unwrap();
        assert_eq!(serde_json::to_string(&x).unwrap(), "\"1536Mi\"");
        // upstream TestJSONWhitespace
        for (json, want) in [
            (r#"" 1""#, "1"),
            (r#""1 ""#, "1"),
            ("1", "1"),
            (" -1", "-1"),
            ("10", "10"),
        ] {
            let v: Quantity = serde_json::from_str(json).unwrap();
            assert_eq!(v.to_string(), want);
        }
        let v: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(v.to_string(), "500m");
        let v: Quantity = serde_json::from_str("null").unwrap();
        assert!(v.is_zero());
        let err = serde_json::from_str::<Quantity>("\"abc\"").unwrap_err();
        assert!(
            err.to_string().starts_with("quantities must match"),
            "{err}"
        );
    }
}
