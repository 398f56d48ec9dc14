//! The pages as people see them: a real headless Chromium (Debian's
//! `chromium` driven through `chromedriver`, installed by scripts/browser)
//! against the real fleet and the simulator. Signs in, walks from the
//! overview to a lock, its order, its listing and back, filters the locks
//! through the form, pages through orders, watches an order's lock badge go
//! from locked to consumed and another's to released, and checks that a
//! viewer sees no write control and a scoped token no other marketplace's
//! rows. A screenshot of each page is kept under
//! `target/tmp/browser/` for a human to look at.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use stockfleet::admin::tokens::{self, Role};
use stockfleet_tests::{ApiServer, TestEnv, eventually, free_port};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WOO: &str = "woocommerce";
const BM: &str = "backmarket";

/// chromedriver on a free port, and a browser session through it.
struct Browser {
    client: Client,
    _driver: Child,
    _profile: PathBuf,
    shots: PathBuf,
    base: String,
}

impl Browser {
    async fn start(base: &str) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "{CHROMEDRIVER} and {CHROMIUM} are needed: run scripts/browser (Debian's chromium and chromium-driver)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let profile = std::env::temp_dir().join(format!("stockfleet-chromium-{port}"));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connected = ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match connected {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "chromedriver did not start a session: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
            shots,
            base: base.to_owned(),
        }
    }

    async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Clicks a link or a form's button and waits for the page it leads to.
    async fn click(&self, css: &str) {
        let before = self.client.current_url().await.expect("url");
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .expect("click");
        eventually(&format!("the page {css} leads to"), || async {
            let now = self.client.current_url().await.expect("url");
            let ready = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .expect("page state");
            now != before && ready == "complete"
        })
        .await;
    }

    async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .len()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn sign_in(&self, token: &str) {
        self.open("/login").await;
        let field = self
            .client
            .find(Locator::Css("input[name=token]"))
            .await
            .expect("token field");
        field.send_keys(token).await.expect("type the token");
        self.click("form[action='/login'] button").await;
        eventually("the overview after signing in", || async {
            self.path().await == "/"
        })
        .await;
    }

    async fn sign_out(&self) {
        self.open("/").await;
        self.click("form[action='/logout'] button").await;
        eventually("the sign-in page", || async {
            self.path().await == "/login"
        })
        .await;
    }

    /// Sets the locks form's fields (empty: any) and submits it.
    async fn filter_locks(&self, marketplace: &str, sku: &str) {
        self.open("/locks").await;
        let select = self
            .client
            .find(Locator::Css("select[name=marketplace]"))
            .await
            .expect("marketplace filter");
        select.select_by_value(marketplace).await.expect("choose");
        let field = self
            .client
            .find(Locator::Css("input[name=sku]"))
            .await
            .expect("SKU filter");
        field.clear().await.expect("clear");
        field.send_keys(sku).await.expect("type");
        self.click("form[action='/locks'] button").await;
    }

    /// The order ids the locks table shows.
    async fn locked_orders(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for link in self
            .client
            .find_all(Locator::Css("table a[href^='/orders/']"))
            .await
            .expect("order links")
        {
            ids.push(link.text().await.expect("link text"));
        }
        ids.sort();
        ids
    }

    /// Reloads the page until it shows `text`.
    async fn until_shown(&self, what: &str, text: &str) {
        eventually(what, || async {
            self.client.refresh().await.expect("reload");
            self.source().await.contains(text)
        })
        .await;
    }
}

/// Orders on WooCommerce (A, C) and Back Market (B) through the real fleet.
struct Shop {
    env: TestEnv,
    sim: stockfleet_tests::Sim,
    _workers: Vec<Child>,
    a: String,
    b: String,
    c: String,
}

async fn shop() -> Shop {
    let env = TestEnv::new().await;
    let sim = env.sim().await;
    env.poll_every(1).await;
    sim.listing(WOO, "BR-1", 5).await;
    sim.listing(BM, "BR-2", 5).await;
    env.set_stock_on(WOO, "BR-1", 10).await;
    env.set_stock_on(BM, "BR-2", 10).await;
    let workers = env.spawn_fleet();
    let a = sim.place(WOO, "BR-1", 1).await;
    let b = sim.place(BM, "BR-2", 1).await;
    let c = sim.place(WOO, "BR-1", 2).await;
    eventually("three orders locked", || async {
        env.scalar("SELECT count(*) FROM marketplace_stock_locks WHERE lock_status = 'locked'")
            .await
            == 3
    })
    .await;
    Shop {
        env,
        sim,
        _workers: workers,
        a,
        b,
        c,
    }
}

#[tokio::test]
async fn a_seller_walks_the_pages_in_a_real_browser() {
    let shop = shop().await;
    let env = &shop.env;
    let api: ApiServer = env.api().await;
    let operator = env.token("otto", Role::Operator).await;
    let viewer = env.token("vera", Role::Viewer).await;
    let woo_team = tokens::create_scoped(&env.db, "woo team", Role::Viewer, &[WOO.to_owned()])
        .await
        .unwrap();
    let browser = Browser::start(&api.base).await;
    let (a, b, c) = (&shop.a, &shop.b, &shop.c);

    // Signed in, the overview links its figures to the pages behind them.
    browser.sign_in(&operator).await;
    browser.shot("overview").await;
    browser.click(".totals a[href='/locks']").await;
    assert_eq!(browser.path().await, "/locks");
    browser.shot("locks").await;
    let mut all = vec![a.clone(), b.clone(), c.clone()];
    all.sort();
    assert_eq!(browser.locked_orders().await, all);
    assert_eq!(
        browser.count(".badge.locked").await,
        4,
        "a badge per row and the count's"
    );

    // The lock's order, its listing, and back.
    browser
        .click(&format!("table a[href='/orders/{WOO}/{a}']"))
        .await;
    assert_eq!(browser.path().await, format!("/orders/{WOO}/{a}"));
    assert!(
        browser
            .source()
            .await
            .contains(r#"<span class="badge locked">locked</span>"#)
    );
    browser.shot("order-locked").await;
    browser.click("table a[href='/stock/BR-1']").await;
    assert_eq!(browser.path().await, "/stock/BR-1");
    let listing = browser.source().await;
    assert!(listing.contains("Listing BR-1") && listing.contains(&format!("/orders/{WOO}/{c}")));
    browser.shot("listing").await;
    browser.client.back().await.expect("back");
    assert_eq!(browser.path().await, format!("/orders/{WOO}/{a}"));

    // The locks form: marketplace alone, SKU alone, both.
    browser.filter_locks(WOO, "").await;
    let mut woo_orders = vec![a.clone(), c.clone()];
    woo_orders.sort();
    assert_eq!(browser.locked_orders().await, woo_orders);
    browser.shot("locks-woocommerce").await;
    browser.filter_locks("", "br-2").await;
    assert_eq!(browser.locked_orders().await, std::slice::from_ref(b));
    browser.filter_locks(WOO, "BR-2").await;
    assert!(browser.locked_orders().await.is_empty());

    // Orders, two to a page: the next link reaches the third.
    browser.open("/orders?limit=2").await;
    assert!(browser.source().await.contains("1–2 of 3"));
    browser.click("p.pager a").await;
    assert!(
        browser.source().await.contains("3–3 of 3"),
        "{}",
        browser.source().await
    );
    browser.shot("orders-page-2").await;

    // A shipped order's lock is consumed; a cancelled one's released.
    shop.sim.move_order(WOO, a, "completed").await;
    browser.open(&format!("/orders/{WOO}/{a}")).await;
    browser
        .until_shown(
            "the shipped order consumed",
            r#"<span class="badge consumed">consumed</span>"#,
        )
        .await;
    browser.shot("order-consumed").await;
    shop.sim.move_order(WOO, c, "cancelled").await;
    browser.open(&format!("/orders/{WOO}/{c}")).await;
    browser
        .until_shown(
            "the cancelled order released",
            r#"<span class="badge released">released</span>"#,
        )
        .await;
    browser.shot("order-released").await;
    assert!(
        browser.source().await.contains("Send to"),
        "an operator gets the status form"
    );

    // A viewer sees no write control.
    browser.sign_out().await;
    browser.sign_in(&viewer).await;
    browser.open(&format!("/orders/{BM}/{b}")).await;
    assert!(
        !browser.source().await.contains("Send to"),
        "no status form for a viewer"
    );
    assert_eq!(
        browser.count("form[method=post]").await,
        0,
        "no form that writes"
    );
    browser.shot("order-viewer").await;

    // A token scoped to WooCommerce never sees Back Market's rows.
    browser.sign_out().await;
    browser.sign_in(&woo_team).await;
    assert!(!browser.source().await.contains("BR-2"));
    browser.shot("overview-woocommerce-team").await;
    browser.open("/locks?status=").await;
    let seen = browser.locked_orders().await;
    assert!(!seen.contains(b) && !seen.is_empty(), "{seen:?}");
    browser.open("/stock/BR-2").await;
    assert!(browser.source().await.contains("404"));
    browser.open("/orders").await;
    assert!(!browser.source().await.contains(&format!("/orders/{BM}/")));

    // At 400 px every page fits the screen: wide tables scroll inside themselves.
    browser
        .client
        .set_window_size(400, 900)
        .await
        .expect("resize");
    for path in ["/", "/locks", "/orders", "/stock", "/stock/BR-1"] {
        browser.open(path).await;
        let widths = browser
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .expect("measure");
        let (page, screen) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert!(
            page <= screen,
            "{path} is {page} px wide on a {screen} px screen"
        );
    }
    browser.shot("listing-400px").await;

    browser.client.close().await.expect("close the browser");
    api.stop().await;
}
