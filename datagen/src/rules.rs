//! Content rules behind the filters: bots, noise files (lock files, docs, generated,
//! vendored) and version-bump hunks.

/// Bot PRs: `[bot]` authors, dependabot/renovate/automerge anywhere, or a "bump" word.
pub fn is_bot(author: &str, title: &str, body: &str) -> bool {
    if author.contains("[bot]") {
        return true;
    }
    [author, title, body].iter().any(|t| {
        let t = t.to_ascii_lowercase();
        ["dependabot", "renovate", "automerge", "auto-merge"]
            .iter()
            .any(|k| t.contains(k))
            || t.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == "bump" || w == "bumps" || w == "bumped")
    })
}

const LOCK_FILES: [&str; 14] = [
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Pipfile.lock",
    "composer.lock",
    "Gemfile.lock",
    "go.sum",
    "uv.lock",
    "flake.lock",
    "mix.lock",
    "pubspec.lock",
];
const DOC_EXT: [&str; 6] = [".md", ".rst", ".txt", ".adoc", ".markdown", ".rdoc"];
const DOC_NAMES: [&str; 8] = [
    "LICENSE",
    "LICENCE",
    "CHANGELOG",
    "CHANGES",
    "NEWS",
    "AUTHORS",
    "CONTRIBUTORS",
    "README",
];
const VENDOR_DIRS: [&str; 5] = [
    "vendor/",
    "vendored/",
    "third_party/",
    "thirdparty/",
    "node_modules/",
];

/// Why a path is noise, or `None` for a code file.
pub fn noise_kind(path: &str) -> Option<&'static str> {
    // Case-insensitive matching without allocating: this runs for every candidate file.
    let p = path.as_bytes();
    let name = path.rsplit('/').next().unwrap_or(path);
    let starts_ci = |s: &[u8], pre: &str| {
        s.len() >= pre.len() && s[..pre.len()].eq_ignore_ascii_case(pre.as_bytes())
    };
    let ends_ci = |s: &[u8], suf: &str| {
        s.len() >= suf.len() && s[s.len() - suf.len()..].eq_ignore_ascii_case(suf.as_bytes())
    };
    if LOCK_FILES.contains(&name) || name.ends_with(".lock") {
        return Some("lock");
    }
    // A vendor directory at the start of the path or right after a `/`.
    let at_component = |i: usize| i == 0 || p[i - 1] == b'/';
    if (0..p.len()).any(|i| at_component(i) && VENDOR_DIRS.iter().any(|d| starts_ci(&p[i..], d))) {
        return Some("vendored");
    }
    if name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name.ends_with(".map")
        || name.ends_with("_pb2.py")
        || name.ends_with(".pb.go")
        || p.windows(9).any(|w| w.eq_ignore_ascii_case(b"generated"))
    {
        return Some("generated");
    }
    if DOC_EXT.iter().any(|e| ends_ci(p, e))
        || DOC_NAMES.iter().any(|n| starts_ci(name.as_bytes(), n))
        || starts_ci(p, "docs/")
        || starts_ci(p, "doc/")
    {
        return Some("docs");
    }
    None
}

/// A changed line that only moves a version number (`version = "1.2.3"`, `"dep": "^4.1.0",`).
fn is_version_line(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() {
        return true;
    }
    let has_dotted = t
        .as_bytes()
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit());
    if !has_dotted {
        return false;
    }
    if t.to_ascii_lowercase().contains("version") {
        return true;
    }
    // key = value / key: value with nothing else on the line
    let parts: Vec<&str> = t
        .split(['=', ':'])
        .filter(|p| !p.trim().is_empty())
        .collect();
    parts.len() == 2 && parts.iter().all(|p| p.split_whitespace().count() == 1)
}

/// True when every changed line of a one-file patch only bumps a version.
pub fn is_version_bump(file_patch: &str) -> bool {
    let mut changed = 0;
    for line in file_patch.lines() {
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        if let Some(body) = line.strip_prefix('+').or_else(|| line.strip_prefix('-')) {
            changed += 1;
            if !is_version_line(body) {
                return false;
            }
        }
    }
    changed > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots() {
        assert!(is_bot("dependabot[bot]", "x", ""));
        assert!(is_bot("alice", "Bump lodash from 4.1 to 4.2", ""));
        assert!(is_bot("alice", "x", "enable automerge"));
        assert!(!is_bot("alice", "Fix bumper rendering", "bumpy road"));
    }

    #[test]
    fn noise() {
        assert_eq!(noise_kind("Cargo.lock"), Some("lock"));
        assert_eq!(noise_kind("web/yarn.lock"), Some("lock"));
        assert_eq!(noise_kind("docs/index.py"), Some("docs"));
        assert_eq!(noise_kind("README"), Some("docs"));
        assert_eq!(noise_kind("src/vendor/x.c"), Some("vendored"));
        assert_eq!(noise_kind("static/app.min.js"), Some("generated"));
        assert_eq!(noise_kind("src/lib.rs"), None);
        assert_eq!(noise_kind("A/Vendor/x.c"), Some("vendored"));
        assert_eq!(noise_kind("x/myvendor/x.c"), None);
        assert_eq!(noise_kind("api/Generated_Types.ts"), Some("generated"));
        assert_eq!(noise_kind("Docs/Guide.MD"), Some("docs"));
        assert_eq!(noise_kind("pkg/readme_utils.py"), Some("docs"));
    }

    #[test]
    fn version_bumps() {
        assert!(is_version_bump(
            "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-__version__ = \"1.2.3\"\n+__version__ = \"1.2.4\"\n"
        ));
        assert!(is_version_bump(
            "@@ -1 +1 @@\n-    \"lodash\": \"^4.1.0\",\n+    \"lodash\": \"^4.2.0\",\n"
        ));
        assert!(!is_version_bump(
            "@@ -1 +1 @@\n-x = compute(1.5)\n+x = compute(2.5) + y\n"
        ));
    }
}
