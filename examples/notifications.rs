//! Sends your own emails with the `Notifier`: a templated welcome email with
//! an attachment, and a raw one, printed by the console sender.
//!
//! ```sh
//! cargo run --example notifications
//! ```
//!
//! Swap `ConsoleSender` for `SmtpSender` / `SendGridSender` (or use
//! `OtpBuilder::from_env`) to send for real; the calls stay the same.

use serde_json::json;
use tower_otp::{Otp, delivery::ConsoleSender};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let otp = Otp::builder()
        .secret("an example secret, use 32+ random bytes")
        .app_name("Shop")
        .email_sender(ConsoleSender::new())
        .build()?;
    let notifier = otp.notifier();

    notifier
        .email("welcome")
        .context(json!({ "name": "Ada", "action_url": "https://shop.example/start" }))
        .to("ada@example.com")
        .bcc("audit@shop.example")
        .attach(
            "getting-started.txt",
            "text/plain",
            b"1. Sign in.\n2. Shop.\n".to_vec(),
        )
        .send()
        .await?;

    notifier
        .raw_email(
            "Your order shipped",
            "<p>Your order <b>#42</b> is on its way.</p>",
        )
        .to("ada@example.com")
        .send()
        .await?;
    Ok(())
}
