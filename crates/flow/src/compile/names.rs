//! Names: node ids and input names, and "did you mean" suggestions for misspelt ones.

/// Longest node id or input name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether an id is well formed (see the module docs); `None` if so, else why not.
pub fn check_node_id(id: &str) -> Option<String> {
    if id.is_empty() || id.chars().count() > MAX_NAME_LEN {
        return Some(format!(
            "node id `{id}` must be 1-{MAX_NAME_LEN} characters long"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        let lower = id.to_ascii_lowercase().replace([' ', '.'], "_");
        return Some(format!(
            "node id `{id}` may only contain a-z, 0-9, `_` and `-` (try `{lower}`)"
        ));
    }
    if id == "inputs" || id == "run" {
        return Some(format!(
            "node id `{id}` is reserved (templates read `{id}.…` for the run's {id}); rename the node"
        ));
    }
    None
}

pub(super) fn check_input_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (!ok).then(|| {
        format!("name `{name}` must be 1-{MAX_NAME_LEN} characters of A-Z, a-z, 0-9, `_` and `-`")
    })
}

/// ` (did you mean `x`?)` when a candidate is within two edits of `name`, else nothing.
pub(super) fn suggestion(name: &str, candidates: &[&str]) -> String {
    let name_len = name.chars().count();
    candidates
        .iter()
        .filter_map(|c| edit_distance_within(name, c, 2).map(|d| (d, *c)))
        .filter(|(d, c)| *d < name_len.max(c.chars().count()))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance in characters if it is at most `k`: only cells within `k` of the
/// diagonal are computed, so the cost is O(length × k) whatever the lengths.
pub(super) fn edit_distance_within(a: &str, b: &str, k: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > k {
        return None;
    }
    let over = k + 1;
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j.min(over)).collect();
    let mut row = vec![over; b.len() + 1];
    for i in 1..=a.len() {
        let low = i.saturating_sub(k).max(1);
        let high = (i + k).min(b.len());
        row[low - 1] = if low == 1 { i.min(over) } else { over };
        for j in low..=high {
            let substitute = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            row[j] = substitute.min(prev[j] + 1).min(row[j - 1] + 1).min(over);
        }
        if high < b.len() {
            row[high + 1] = over;
        }
        std::mem::swap(&mut prev, &mut row);
    }
    let d = prev[b.len()];
    (d <= k).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance_within("kitten", "sitting", 2), None);
        assert_eq!(edit_distance_within("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance_within("kitten", "sittn", 2), Some(2));
        assert_eq!(edit_distance_within("", "ab", 2), Some(2));
        assert_eq!(edit_distance_within("abc", "abc", 2), Some(0));
        assert_eq!(edit_distance_within("abcdef", "abcxyz", 2), None);
        assert_eq!(
            suggestion("reveiw", &["review", "go"]),
            " (did you mean `review`?)"
        );
        assert_eq!(suggestion("zz", &["review", "go"]), "");
    }
}
