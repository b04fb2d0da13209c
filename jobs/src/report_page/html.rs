//! The page around the charts: sections, figure tiles and tables, with a stylesheet that reads
//! on a laptop and a phone. Everything is inline; nothing is fetched.

use std::fmt::Write as _;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{--ink:#1d2330;--muted:#5b6475;--line:#dfe3ea;--accent:#0072b2}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:#f6f7f9}\
header{background:var(--ink);color:#fff;padding:1rem 1.25rem}\
header h1{margin:0;font-size:1.4rem}\
nav{display:flex;flex-wrap:wrap;gap:.4rem 1rem;padding:.6rem 1.25rem;background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0}\
nav a{color:var(--accent);text-decoration:none}\
main{max-width:1100px;margin:0 auto;padding:0 1rem 3rem}\
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin:1.25rem 0;padding:1rem 1.25rem}\
h2{margin:.2rem 0 1rem;font-size:1.25rem}\
h3{font-size:1rem;margin:1.2rem 0 .4rem;color:var(--muted)}\
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.75rem}\
.tile{border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem}\
.tile b{display:block;font-size:1.35rem}\
.tile span{color:var(--muted);font-size:.85rem}\
figure{margin:1rem 0}\
figure svg{width:100%;height:auto;display:block}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
p{color:var(--muted)}\
@media (max-width:600px){body{font-size:15px}section{padding:.8rem}header h1{font-size:1.15rem}}";

/// The page being written.
pub struct Page {
    title: String,
    nav: Vec<(String, String)>,
    body: String,
    open: bool,
}

impl Page {
    /// A page titled `title`.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            nav: Vec::new(),
            body: String::new(),
            open: false,
        }
    }

    /// Starts a section, closing the one before.
    pub fn section(&mut self, id: &str, heading: &str) {
        self.close();
        self.nav.push((id.to_string(), heading.to_string()));
        let _ = write!(self.body, "<section id=\"{id}\"><h2>{}</h2>", esc(heading));
        self.open = true;
    }

    fn close(&mut self) {
        if self.open {
            self.body.push_str("</section>");
            self.open = false;
        }
    }

    /// Figures as tiles: `(what, value)`.
    pub fn tiles(&mut self, tiles: &[(&str, String)]) {
        self.body.push_str("<div class=\"tiles\">");
        for (what, value) in tiles {
            let _ = write!(
                self.body,
                "<div class=\"tile\"><b>{}</b><span>{}</span></div>",
                esc(value),
                esc(what)
            );
        }
        self.body.push_str("</div>");
    }

    /// A chart (an SVG document from [`super::charts`]) as a figure with `id`.
    pub fn chart(&mut self, id: &str, svg: &str) {
        // Drop the XML declaration, if any: the SVG is inline.
        let svg = svg.find("<svg").map_or(svg, |i| &svg[i..]);
        let _ = write!(self.body, "<figure id=\"{id}\" role=\"img\">{svg}</figure>");
    }

    /// A table whose cells are already escaped HTML; cells that read as numbers are right-aligned.
    pub fn table(&mut self, caption: &str, header: &[&str], rows: &[Vec<String>]) {
        let _ = write!(
            self.body,
            "<h3>{}</h3><div class=\"scroll\"><table><thead><tr>",
            esc(caption)
        );
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", esc(h));
        }
        self.body.push_str("</tr></thead><tbody>");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let numeric = cell
                    .trim_end_matches(['%', 'k', 'M', 'B'])
                    .parse::<f64>()
                    .is_ok();
                let class = if numeric { " class=\"n\"" } else { "" };
                let _ = write!(self.body, "<td{class}>{cell}</td>");
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</tbody></table></div>");
    }

    /// A paragraph of plain text (already escaped where it came from data).
    pub fn paragraph(&mut self, text: &str) {
        let _ = write!(self.body, "<p>{text}</p>");
    }

    /// The whole document.
    pub fn finish(mut self) -> String {
        self.close();
        let mut nav = String::new();
        for (id, heading) in &self.nav {
            let _ = write!(nav, "<a href=\"#{id}\">{}</a>", esc(heading));
        }
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>{STYLE}</style></head><body>\
             <header><h1>{title}</h1></header><nav>{nav}</nav><main>{body}</main></body></html>\n",
            title = esc(&self.title),
            body = self.body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_sections_close() {
        let mut page = Page::new("a <b> & c");
        page.section("one", "One & two");
        page.paragraph(&esc("<script>"));
        let html = page.finish();
        assert!(html.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(html.contains("&lt;script&gt;"));
        assert_eq!(
            html.matches("<section").count(),
            html.matches("</section>").count()
        );
    }
}
