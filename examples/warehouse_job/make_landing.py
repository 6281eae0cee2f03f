"""Write a landing folder of new support tickets as Parquet, deterministically.

Stands in for whatever drops raw data into a warehouse (an export, a Fivetran
sync): `enrich.sql` picks the tickets up from here. The same arguments always
write the same rows, so tests and re-runs are reproducible.

    python make_landing.py                              # 3,000 tickets, ids 1..3000, in ./landing
    python make_landing.py --first-id 3001 --rows 500   # the next day's 500 new tickets
"""

from __future__ import annotations

import argparse
import random
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TEMPLATES = {
    "billing": [
        ("Charged twice", "Order {order} was charged ${amount} twice. Please refund one of the charges."),
        ("Invoice question", "Why is invoice {invoice} for ${amount} higher than last month? Reply to {email}."),
        ("Refund status", "I was promised a refund of ${amount} for {order} and have not received it."),
        ("Plan pricing", "How much does the annual plan cost for {seats} seats compared to paying monthly?"),
    ],
    "bug": [
        ("Export crashes", "Exporting a report to {format} crashes the app with error {code} every time."),
        ("Wrong totals", "The dashboard shows the wrong totals for {month} since yesterday's update."),
        ("Sync broken", "Syncing stopped working this morning on {device}; the app shows error {code}."),
    ],
    "account_access": [
        ("Cannot log in", "I reset my password but still cannot log in to my account {email}."),
        ("Lost 2FA phone", "I lost my phone and cannot get the two-factor code for {email}. I am locked out."),
        ("Account locked", "The account {email} got locked after too many login attempts, please unlock it."),
    ],
    "feature_request": [
        ("Dark mode", "It would be great to have a dark mode in the {area}."),
        ("Slack alerts", "Could you add an integration that posts {area} alerts to Slack?"),
        ("CSV import", "Please let us import {things} from a CSV file."),
    ],
}
CUSTOMERS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]
NAMES = ["Ann", "Bo", "Cy", "Di", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lena"]
GREETINGS = ["", "Hi team. ", "Hello. ", "Good morning. ", "Hi there. ", "Dear support, "]
CLOSERS = [
    "Thanks, {name}",
    "Regards, {name} ({company})",
    "{name}, {company}",
    "Thank you! {name}",
    "{name} at {company}",
]
DETAILS = {
    "format": ["PDF", "Excel", "CSV", "PowerPoint"],
    "month": ["January", "February", "March", "April", "May", "June"],
    "device": ["my laptop", "the iPad app", "Android", "the desktop app", "Chrome"],
    "area": ["editor", "dashboard", "reports", "mobile app", "admin console"],
    "things": ["contacts", "products", "price lists", "suppliers", "users"],
}
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("created_at", pa.timestamp("us")),
        ("customer", pa.string()),
        ("subject", pa.string()),
        ("body", pa.string()),
    ]
)


def _ticket_text(rng: random.Random, customer: str) -> tuple[str, str]:
    """One ticket's subject and body: a template filled with this customer's details, in one of
    several wordings, signed by one of its people."""
    subject, body = rng.choice(TEMPLATES[rng.choice(sorted(TEMPLATES))])
    name = rng.choice(NAMES)
    fill = {key: rng.choice(options) for key, options in DETAILS.items()}
    fill.update(
        order=f"ORD-{rng.randint(1000, 9999)}",
        invoice=f"INV-{rng.randint(100, 999)}",
        amount=f"{rng.randint(5, 500)}.{rng.randint(0, 99):02d}",
        email=f"{name.lower()}@{customer}.example",
        code=rng.choice([400, 403, 500, 502, 504]),
        seats=rng.randint(2, 250),
    )
    closer = rng.choice(CLOSERS).format(name=name, company=customer.capitalize())
    return subject, f"{rng.choice(GREETINGS)}{body.format(**fill)} {closer}"


def make_tickets(first_id: int, rows: int, seed: int) -> pa.Table:
    """`rows` tickets with ids first_id.. (a pure function of the arguments). Like real tickets,
    no two have the same text (a repeat is drawn again), so each is a distinct input to enrich."""
    rng = random.Random(f"{seed}:{first_id}:{rows}")
    start = datetime(2026, 1, 1) + timedelta(minutes=first_id)
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    seen: set[tuple[str, str]] = set()
    for offset in range(rows):
        customer = rng.choice(CUSTOMERS)
        text = _ticket_text(rng, customer)
        while text in seen:
            text = _ticket_text(rng, customer)
        seen.add(text)
        columns["id"].append(first_id + offset)
        columns["created_at"].append(start + timedelta(minutes=offset))
        columns["customer"].append(customer)
        columns["subject"].append(text[0])
        columns["body"].append(text[1])
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def write_landing(out: Path, *, first_id: int = 1, rows: int = 3000, files: int = 3, seed: int = 7) -> list[Path]:
    """Split the tickets over `files` Parquet files in `out` (like several drops of one export)."""
    out.mkdir(parents=True, exist_ok=True)
    table = make_tickets(first_id, rows, seed)
    per_file = -(-rows // files)
    paths = []
    for index in range(files):
        part = table.slice(index * per_file, per_file)
        if part.num_rows:
            path = out / f"tickets_{first_id:08d}_{index}.parquet"
            pq.write_table(part, path)
            paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "landing")
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    paths = write_landing(args.out, first_id=args.first_id, rows=args.rows, files=args.files, seed=args.seed)
    print(
        f"wrote {args.rows:,} tickets (ids {args.first_id}..{args.first_id + args.rows - 1}) to {len(paths)} file(s) in {args.out}"
    )


if __name__ == "__main__":
    main()
