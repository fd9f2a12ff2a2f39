//! The live page at `/`: a static HTML page, its script and stylesheet, and uPlot (a 51 KB chart
//! library, MIT, vendored from npm with its licence beside it in `web/`), all compiled into the
//! binary — no CDN, nothing fetched from outside the machine. The script reads the same
//! read-only API as everyone else (`/pipelines`, `/pipelines/NAME/progress`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// A file of the page: its bytes and content type.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_bytes!("web/index.html"),
    content_type: "text/html; charset=utf-8",
};
const APP: Asset = Asset {
    body: include_bytes!("web/app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset = Asset {
    body: include_bytes!("web/style.css"),
    content_type: "text/css; charset=utf-8",
};
const UPLOT: Asset = Asset {
    body: include_bytes!("web/uPlot.iife.min.js"),
    content_type: "text/javascript; charset=utf-8",
};
const UPLOT_CSS: Asset = Asset {
    body: include_bytes!("web/uPlot.min.css"),
    content_type: "text/css; charset=utf-8",
};
const UPLOT_LICENSE: Asset = Asset {
    body: include_bytes!("web/uPlot.LICENSE"),
    content_type: "text/plain; charset=utf-8",
};

fn serve(asset: &'static Asset) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // The files change only with the binary; revalidating costs a request, not a
            // download, and a new weir is never shown an old script.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
}

/// The page's routes, to be merged into the HTTP API's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/ui/app.js", get(|| async { serve(&APP) }))
        .route("/ui/style.css", get(|| async { serve(&STYLE) }))
        .route("/ui/uPlot.iife.min.js", get(|| async { serve(&UPLOT) }))
        .route("/ui/uPlot.min.css", get(|| async { serve(&UPLOT_CSS) }))
        .route("/ui/uPlot.LICENSE", get(|| async { serve(&UPLOT_LICENSE) }))
}
