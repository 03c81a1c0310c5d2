//! Credentials kept out of what people see: URLs shown in health answers, job status, logs and
//! connectivity files lose their `user:password@` part.

/// `text` with the userinfo (`user[:password]@`) of every `scheme://` URL in it removed:
/// `http://admin:S3cretPass@llm.lan:8000/v1` becomes `http://llm.lan:8000/v1`. Works on a bare
/// URL and on any text containing URLs (an error message), without parsing them: an authority
/// runs from `://` to the first `/`, `?`, `#`, whitespace, quote or bracket, and everything up to
/// its last `@` is dropped.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(
                        c,
                        '/' | '?' | '#' | '"' | '\'' | '`' | '(' | ')' | '<' | '>'
                    )
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed_from_urls_and_text() {
        let cases = [
            (
                "http://admin:S3cretPass@127.0.0.1:8000/v1",
                "http://127.0.0.1:8000/v1",
            ),
            ("https://token@llm.example", "https://llm.example"),
            ("http://a:b@c@host?x=1", "http://host?x=1"),
            ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
            (
                "error sending request for url (http://u:p@h:1/v1/models): refused",
                "error sending request for url (http://h:1/v1/models): refused",
            ),
            (
                "two: http://x:y@one/ and `https://z@two`",
                "two: http://one/ and `https://two`",
            ),
            (
                "no url at all, user@example.com",
                "no url at all, user@example.com",
            ),
            ("", ""),
        ];
        for (given, shown) in cases {
            assert_eq!(redact_userinfo(given), shown, "{given}");
        }
    }
}
