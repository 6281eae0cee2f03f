"""Write the example's seed CSVs (support tickets and sales leads), deterministically.

The CSVs are committed; run this only to change them:
    python scripts/generate_seeds.py   (from examples/dbt_project)
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
START = datetime(2026, 3, 2, 8, 0)

FIRST_NAMES = [
    "ana",
    "ben",
    "chen",
    "dara",
    "eli",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "jo",
    "kofi",
    "lena",
    "mateo",
    "nia",
]
DOMAINS = ["example.com", "acme.io", "globex.net", "initech.org", "umbrella.co"]
PRODUCT_AREAS = ["dashboard", "report export", "mobile app", "API", "billing page", "editor", "search", "importer"]

TICKETS: dict[str, list[tuple[str, str]]] = {
    "billing": [
        ("Charged twice", "I was charged twice for order {order}. Please refund the extra {amount}."),
        (
            "Refund request",
            "I cancelled within the trial but still paid {amount}. Can I get a refund for invoice {order}?",
        ),
        ("Invoice address wrong", "Invoice {order} shows our old company address. Please reissue it, contact {email}."),
        ("Plan pricing", "How much does the annual plan cost for 40 seats compared to monthly billing?"),
        ("Card declined", "My card was declined when renewing the subscription, but the bank says all is fine."),
        ("VAT missing", "Our invoice {order} has no VAT number on it, finance needs it this week."),
    ],
    "bug": [
        ("{area} crashes", "Every time I open the {area} it crashes with error 500. Started after the last update."),
        ("Wrong totals in {area}", "The {area} shows wrong totals since yesterday, numbers do not match the CSV."),
        ("{area} is very slow", "Loading the {area} takes over a minute and then times out with an error."),
        ("Blank page", "The {area} shows a blank page in Firefox, the console says TypeError."),
        ("Export broken", "Exporting from the {area} produces an empty file, this used to work."),
        ("Sync error", "The {area} keeps showing 'sync failed' and my changes are lost. This is urgent!"),
    ],
    "account_access": [
        ("Cannot log in", "I reset my password twice and still cannot log in. My login is {email}."),
        ("Lost 2FA phone", "I lost my phone and cannot get the two-factor code, please help me get back in."),
        ("Account locked", "My account got locked after too many attempts, I need access for a demo today."),
        ("SSO not working", "Our SSO login redirects in a loop since this morning, nobody on the team can sign in."),
        ("Change account email", "How do I change the email on my account from {email} to my new address?"),
        ("Deleted account", "I deleted my account by mistake, can you restore it? It was under {email}."),
    ],
    "feature_request": [
        ("Dark mode", "It would be great to have a dark mode in the {area}."),
        ("Slack integration", "Could you add an integration that posts alerts from the {area} to Slack?"),
        ("Bulk edit", "Please add bulk edit to the {area}, editing rows one by one takes forever."),
        ("More export formats", "Would love to export from the {area} to Parquet and Excel, not only CSV."),
        ("Custom roles", "We need custom roles so contractors can view but not edit the {area}."),
        ("Keyboard shortcuts", "Feature idea: keyboard shortcuts for the {area}, thanks for the great product!"),
    ],
}
OPENERS = ["", "Hi team! ", "Hello. ", "Hey there. ", "Good morning. ", "URGENT: "]
CLOSERS = ["", " Thanks.", " Thank you!", " Regards, {name}.", " Please reply soon.", " Not in a hurry."]

LEAD_QUERIES = {
    "qualified": [
        "We have budget approved to buy a {thing} this quarter",
        "Procurement needs a quote for {seats} seats of your {thing}",
        "Our CTO wants a demo, we are choosing a {thing} vendor by {month}",
        "Evaluating three {thing} vendors, need pricing and a security review",
        "Looking to replace our current {thing}, contract ends in {month}",
    ],
    "not_qualified": [
        "I am a student writing a thesis on {thing}s",
        "Looking for a job as a data engineer",
        "Just curious what your {thing} does",
        "Do you have a free plan for hobby projects?",
        "Researching {thing} trends for a blog post",
    ],
}
THINGS = ["data platform", "BI tool", "support desk", "AI classifier", "data warehouse", "ETL tool"]
MONTHS = ["April", "May", "June", "September", "the end of the year"]
REGIONS = ["NA", "EMEA", "APAC", "LATAM"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Soylent", "Tyrell", "Cyberdyne"]


def tickets(rng: random.Random, count: int) -> list[dict[str, object]]:
    rows = []
    for ticket_id in range(1, count + 1):
        category = rng.choice(list(TICKETS))
        subject, body = rng.choice(TICKETS[category])
        name = rng.choice(FIRST_NAMES)
        fill = {
            "order": f"ORD-{rng.randint(1000, 9999)}",
            "amount": f"${rng.randint(9, 499)}.{rng.randint(0, 99):02d}",
            "email": f"{name}@{rng.choice(DOMAINS)}",
            "area": rng.choice(PRODUCT_AREAS),
            "name": name.title(),
        }
        text = rng.choice(OPENERS) + body + rng.choice(CLOSERS)
        subject = subject.format(**fill)
        rows.append(
            {
                "ticket_id": ticket_id,
                "created_at": (START + timedelta(minutes=37 * ticket_id)).isoformat(sep=" "),
                "channel": rng.choice(["email", "chat", "web"]),
                "customer_email": fill["email"],
                "subject": subject[0].upper() + subject[1:],
                "body": text.format(**fill),
            }
        )
    return rows


def leads(rng: random.Random, count: int) -> list[dict[str, object]]:
    rows = []
    for lead_id in range(1, count + 1):
        intent = rng.choice(list(LEAD_QUERIES))
        query = rng.choice(LEAD_QUERIES[intent]).format(
            thing=rng.choice(THINGS), seats=rng.choice([25, 50, 200, 1000]), month=rng.choice(MONTHS)
        )
        rows.append(
            {
                "lead_id": lead_id,
                "created_at": (START + timedelta(minutes=53 * lead_id)).isoformat(sep=" "),
                "company": f"{rng.choice(COMPANIES)} {rng.choice(['Inc', 'GmbH', 'Ltd', 'KK', 'SA'])}",
                "region": rng.choice(REGIONS),
                "query": query,
            }
        )
    return rows


def write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    rng = random.Random(20260302)
    write(SEEDS / "raw_tickets.csv", tickets(rng, 240))
    write(SEEDS / "raw_leads.csv", leads(rng, 160))
