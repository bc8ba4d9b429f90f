//! Postgres NUMERIC in binary form: base-10000 digits with a weight, a sign and a display
//! scale. Written from (and read back to) the exact decimal text, so any precision works.

/// Digits per base-10000 group.
const GROUP_DIGITS: usize = 4;
const SIGN_POSITIVE: u16 = 0x0000;
const SIGN_NEGATIVE: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;

/// Writes the decimal `text` (`-123.4500`) as a binary numeric.
pub fn write_binary(text: &str, out: &mut Vec<u8>) {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let int_part = int_part.trim_start_matches('0');
    // Pad the integer part on the left and the fraction on the right to whole groups.
    let int_pad = (GROUP_DIGITS - int_part.len() % GROUP_DIGITS) % GROUP_DIGITS;
    let frac_pad = (GROUP_DIGITS - frac_part.len() % GROUP_DIGITS) % GROUP_DIGITS;
    let digits: String = "0".repeat(int_pad) + int_part + frac_part + &"0".repeat(frac_pad);
    let int_groups = (int_pad + int_part.len()) / GROUP_DIGITS;
    let mut groups: Vec<i16> = digits
        .as_bytes()
        .chunks(GROUP_DIGITS)
        .map(|c| {
            c.iter().fold(0i16, |acc, d| {
                acc * 10 + i16::from(d.wrapping_sub(b'0') % 10)
            })
        })
        .collect();
    let mut weight = int_groups as i16 - 1;
    // Leading zero groups lower the weight; trailing ones are implied.
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if negative && !groups.is_empty() {
        SIGN_NEGATIVE
    } else {
        SIGN_POSITIVE
    };
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(frac_part.len() as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// Reads a binary numeric back to its decimal text; None if the bytes are malformed.
pub fn read_binary(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]))
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i64;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    if sign == SIGN_NAN {
        return Some("NaN".into());
    }
    if sign != SIGN_POSITIVE && sign != SIGN_NEGATIVE {
        return None;
    }
    let groups: Vec<u16> = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<_>>()?;
    if groups.iter().any(|g| *g >= 10_000) {
        return None;
    }
    let group = |k: i64| -> u16 {
        // Group k counts from the most significant, whose place is `weight`.
        let index = weight - k;
        if index < 0 || index as usize >= groups.len() {
            0
        } else {
            groups[index as usize]
        }
    };
    let mut int_part = String::new();
    for place in (0..=weight.max(0)).rev() {
        int_part.push_str(&format!("{:04}", group(place)));
    }
    let int_part = int_part.trim_start_matches('0');
    let mut frac = String::new();
    let mut place = -1i64;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", group(place)));
        place -= 1;
    }
    frac.truncate(dscale);
    let mut text = String::new();
    if sign == SIGN_NEGATIVE {
        text.push('-');
    }
    text.push_str(if int_part.is_empty() { "0" } else { int_part });
    if dscale > 0 {
        text.push('.');
        text.push_str(&frac);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let mut out = Vec::new();
        write_binary(text, &mut out);
        read_binary(&out).unwrap()
    }

    #[test]
    fn numerics_round_trip() {
        for t in [
            "0",
            "1",
            "-1",
            "123.45",
            "10000",
            "0.0001",
            "-98765432109876543210.123456789",
            "12.3400",
        ] {
            assert_eq!(round_trip(t), t);
        }
    }

    #[test]
    fn binary_layout_matches_postgres() {
        // 123.45 = groups [123, 4500], weight 0, dscale 2.
        let mut out = Vec::new();
        write_binary("123.45", &mut out);
        assert_eq!(out, vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 123, 0x11, 0x94]);
    }
}
