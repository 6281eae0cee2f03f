"""Writes the bench's own labeled sets (support_tickets.json, product_reviews.json, business_emails.json).

Every text is the team's own writing: hand-written scenarios, sentences and sign-offs, combined
with hand-written slot values under a fixed seed, so the files are reproducible:

    python bench/data/make_sets.py

Tickets and reviews are split by scenario (or sentence template): a test text never shares its
scenario with a text the reviewed examples are drawn from, so the bench asks about new problems,
not reworded copies of the examples.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLOTS = {
    "amount": ["$19", "$49.99", "$120", "$240", "€35", "£80", "$1,200", "$9.99", "€410", "$75"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "September", "October", "November"],
    "invoice": ["INV-2231", "INV-778", "INV-10492", "INV-3307", "INV-5820", "#88231", "#40017"],
    "feature": [
        "the report builder",
        "the calendar view",
        "CSV export",
        "the mobile app",
        "the search bar",
        "the dashboard",
        "file uploads",
        "the billing page",
        "notifications",
        "the API",
    ],  # fmt: skip
    "integration": ["Slack", "Microsoft Teams", "Salesforce", "HubSpot", "Zapier", "Jira", "Google Sheets", "Notion"],
    "browser": ["Chrome", "Firefox", "Safari", "Edge"],
    "device": ["iPhone", "Android phone", "iPad", "work laptop", "Chromebook"],
    "n": ["3", "5", "12", "20", "40"],
}

# label -> scenarios; a scenario is (subject lines, body). The first half of each list feeds the
# pool the reviewed examples are drawn from, the second half the test split.
TICKETS: dict[str, list[tuple[list[str], str]]] = {
    "billing": [
        (["Charged twice", "Double charge on my card"], "My card was charged {amount} twice for the {month} subscription. Please refund the extra charge."),
        (["Refund request", "Want my money back"], "I cancelled within the trial but was still billed {amount}. I would like a refund."),
        (["Invoice is wrong", "Incorrect invoice"], "Invoice {invoice} lists {n} seats but we only have 2 users. Can you correct it?"),
        (["VAT number missing"], "Our VAT number is not on invoice {invoice}, and our accountant needs it to book the payment."),
        (["Payment failed", "Card declined"], "The renewal payment of {amount} failed even though the card is valid. How do I pay the open balance?"),
        (["Annual vs monthly pricing", "Pricing question"], "How much would we save by switching from the monthly plan to annual billing?"),
        (["Change billing email"], "Please send future invoices to our finance address instead of mine."),
        (["Unexpected price increase"], "Our bill went up to {amount} this month without any notice. Why did the price change?"),
        (["Receipt needed"], "Could you send me a receipt for the {amount} payment I made in {month}? I need it for expenses."),
        (["Downgrade plan"], "We want to move to the cheaper plan from next month. Will the difference be credited?"),
        (["Overcharged for seats"], "We removed {n} users in {month} but are still paying for them. Please adjust the charges."),
        (["Refund for outage"], "Your service was down for two days in {month}. Is there a credit or partial refund for that?"),
        (["Wire transfer details"], "Our company pays by bank transfer. Where can I find the IBAN and reference for invoice {invoice}?"),
        (["Coupon not applied"], "I entered the discount code at checkout but was charged the full {amount}."),
        (["Who is charging me?"], "There is a charge of {amount} on my statement from your company and I do not recognise it."),
        (["Switch credit card"], "Our corporate card expires next week. How do I update the payment method before the renewal?"),
        (["Tax exemption"], "We are a registered nonprofit. Can you remove the sales tax from our invoices?"),
        (["Billing cycle date"], "Can we move our billing date to the first of the month so it lines up with our budget?"),
        (["Trial converted to paid"], "I never agreed to a paid plan, but after the trial I was charged {amount}. Please reverse it."),
        (["Quote for more seats"], "We plan to add {n} more people. What would that cost per month?"),
    ],
    "bug": [
        (["App crashes on export", "Export crash"], "Every time I export to PDF the app crashes with an error 500."),
        (["Dashboard totals wrong"], "Since yesterday's update the dashboard shows totals that do not match our data."),
        (["Blank page in {browser}"], "In {browser} the settings page loads as a blank white screen. Other browsers are fine."),
        (["Upload stuck at 99%"], "File uploads stop at 99% and never finish, on any file size."),
        (["Notifications not arriving"], "We stopped receiving email notifications on {month} 3, although they are switched on."),
        (["Search returns nothing"], "Searching for a customer by name returns no results even for records I can see in the list."),
        (["Mobile app freezes"], "The app on my {device} freezes when I open {feature} and I have to force quit it."),
        (["Dates shown wrong"], "All the dates in {feature} are shifted by one day since the time change."),
        (["Error when saving"], "Clicking save on a form shows 'Something went wrong' and my changes are lost."),
        (["Sync broken"], "Changes made on my {device} do not show up on the web version anymore."),
        (["Duplicate records"], "Importing a CSV created every row twice, and now we have {n} duplicate contacts."),
        (["Charts not loading"], "The charts on {feature} spin forever and never render, in {browser} and on my {device}."),
        (["API returns 502"], "Calls to the API endpoint for orders have returned 502 Bad Gateway since this morning."),
        (["Button does nothing"], "The 'Send invite' button does nothing when I click it, and the console shows a JavaScript error."),
        (["Wrong language"], "The interface suddenly switched to German for everyone on our team and the setting is still English."),
        (["Report is empty"], "The weekly report email arrives, but every table in it is empty."),
        (["Attachments corrupted"], "Attachments downloaded from {feature} are corrupted and will not open."),
        (["Slow after update"], "After the latest release every page takes 30 seconds to load; before it was instant."),
        (["Filter ignored"], "Filtering the list by status has no effect: all items are still shown."),
        (["Integration stopped posting"], "Our {integration} integration stopped posting updates on {month} 12 without any error."),
    ],
    "account_access": [
        (["Cannot log in", "Login not working"], "I reset my password but still cannot log in to my account."),
        (["Lost 2FA phone"], "I lost my phone and cannot get my two-factor code, so I am locked out."),
        (["Account locked"], "My account was locked after too many attempts. How do I unlock it?"),
        (["Password reset email missing"], "I requested a password reset three times and never received the email."),
        (["SSO login fails"], "Signing in with our company's single sign-on gives an 'invalid SAML response' message."),
        (["Former employee's account"], "A colleague left the company and we need to take over the account they created."),
        (["Change my login email"], "I changed jobs and need the login email on my account changed to my new address."),
        (["Account deleted by mistake"], "I think I deleted my account by accident. Can it be restored?"),
        (["Hacked account"], "Someone changed my password and I can no longer sign in. I think my account was compromised."),
        (["Invite link expired"], "The invitation link my admin sent says it has expired and I cannot join the workspace."),
        (["Verification code not arriving"], "The SMS verification code never arrives on my {device}, so I cannot finish signing in."),
        (["Logged out constantly"], "The site logs me out every few minutes and asks for my password again."),
        (["Reset authenticator app"], "I got a new {device} and my authenticator app did not transfer. Please reset my two-factor setup."),
        (["Username forgotten"], "I do not remember which email address I used to register. How can I get into my account?"),
        (["Admin rights lost"], "I was the workspace owner but now I only have member access and cannot manage users."),
        (["Suspicious login alert"], "I got an alert about a sign-in from another country that was not me. Please secure my account."),
        (["Cannot access after name change"], "After my name changed in our directory, single sign-on no longer recognises me."),
        (["Too many login attempts"], "It says too many failed login attempts, try again later, and it has said that for a whole day."),
        (["Remove old device"], "How do I sign out my old {device} that was stolen, so nobody can get into my account from it?"),
        (["Magic link not working"], "The sign-in link in the email opens the login page again instead of signing me in."),
    ],
    "feature_request": [
        (["Dark mode please", "Dark theme"], "It would be great to have a dark mode in the editor."),
        (["{integration} integration"], "Could you add an integration that posts alerts to {integration}?"),
        (["Bulk edit"], "Please let us edit many records at once instead of one at a time."),
        (["Export to Excel"], "We would love to export {feature} straight to Excel, not just CSV."),
        (["Custom fields"], "It would help a lot if we could add our own custom fields to contacts."),
        (["Keyboard shortcuts"], "Any plans to add keyboard shortcuts for the common actions? Power users would love it."),
        (["Offline mode"], "Our field team often has no signal. An offline mode for the {device} app would be very useful."),
        (["More chart types"], "Could you add pie charts and stacked bars to {feature}? Line charts are all we have now."),
        (["Recurring tasks"], "Please consider recurring tasks, for example one that repeats every Monday."),
        (["API webhooks"], "We would like webhooks so our systems hear about new orders without polling the API."),
        (["Two calendars side by side"], "A suggestion: let us view two team calendars side by side."),
        (["Scheduled reports"], "It would be nice to schedule a report to be emailed every Friday."),
        (["Undo button"], "Could you add an undo for deletions? It is too easy to remove something by mistake."),
        (["Spanish translation"], "Half of our staff speak Spanish. Is a Spanish version of the interface on the roadmap?"),
        (["Tags for projects"], "We would like to tag projects with colours so we can group them."),
        (["Template library"], "A library of ready-made templates would save new users a lot of time."),
        (["Granular permissions"], "We need read-only roles, so contractors can see {feature} without editing it."),
        (["Sync with {integration}"], "Would you consider a two-way sync with {integration}? We copy data by hand today."),
        (["Larger upload limit"], "Could the upload limit be raised? Our design files are often bigger than 100 MB."),
        (["Comments on records"], "Let us leave comments on a record and mention colleagues, like in a chat."),
    ],
}  # fmt: skip
TICKET_OPENERS = ["", "", "Hi,\n", "Hello support,\n", "Hi team, ", "Good morning. ", "Hey there, "]
TICKET_CLOSERS = [
    "",
    "",
    " Thanks.",
    " Thank you!",
    " Regards, Dana",
    " Cheers",
    " Appreciate the help.",
    " Best, Omar",
]

TICKET_LABELS = {
    "billing": "Charges, invoices, refunds, payments, pricing or subscription plans.",
    "bug": "Something in the product is broken, crashes, shows an error or behaves wrongly.",
    "account_access": "Login, password, two-factor authentication, locked or deleted accounts.",
    "feature_request": "Asking for a new capability or an improvement to the product.",
}


def fill(template: str, rng: random.Random) -> str:
    return template.format(**{key: rng.choice(values) for key, values in SLOTS.items()})


def tickets(rng: random.Random) -> dict:
    rows = []
    for label, scenarios in TICKETS.items():
        half = len(scenarios) // 2
        for index, (subjects, body) in enumerate(scenarios):
            part = "pool" if index < half else "test"
            for _ in range(4 if part == "pool" else 3):  # 40 pool and 30 test tickets per label
                text = rng.choice(TICKET_OPENERS) + fill(body, rng) + rng.choice(TICKET_CLOSERS)
                rows.append({"subject": fill(rng.choice(subjects), rng), "body": text, "label": label, "part": part})
    return {
        "name": "support_tickets",
        "description": "Route a customer support ticket to the team that should handle it.",
        "inputs": ["subject", "body"],
        "labels": TICKET_LABELS,
        "rows": _deduplicated(rows, ("subject", "body")),
    }


PRODUCTS = ["blender", "backpack", "headphones", "desk lamp", "kettle", "running shoes", "phone case", "office chair", "coffee grinder", "rain jacket", "keyboard", "water bottle"]  # fmt: skip
REVIEW_SENTENCES: dict[str, list[str]] = {
    "positive": [
        "I love this {p}, it works perfectly.", "Best {p} I have owned, worth every penny.",
        "Arrived early and the quality is excellent.", "Really impressed, it feels solid and well made.",
        "Five stars, I would happily buy it again.", "My whole family uses the {p} and we are delighted.",
        "Exceeded my expectations in every way.", "Great value for the price, highly recommend.",
        "Super comfortable and looks fantastic.", "Customer service was wonderful when I had a question.",
        "It does its job brilliantly and quietly.", "So glad I picked this {p}, no regrets at all.",
        "Fantastic {p}, I use it every day.", "The build quality is superb and it looks great on my desk.",
        "Setup took two minutes and it has worked flawlessly since.", "Absolutely worth it, I am thrilled.",
        "I bought a second one as a gift because I like mine so much.", "Lovely design and it performs even better.",
        "This {p} made my mornings so much easier.", "Sturdy, reliable and a pleasure to use.",
        "Honestly the nicest {p} I have tried.", "It is perfect, exactly what I hoped for.",
        "Happy with it, the battery lasts for days.", "Brilliant purchase, my only regret is not buying it sooner.",
    ],
    "negative": [
        "It broke after two days, very disappointed.", "Terrible quality, the {p} feels cheap and flimsy.",
        "Do not buy this, it stopped working within a week.", "Waste of money, I am returning it.",
        "The {p} arrived scratched and customer service ignored me.", "Awful, it is much smaller than the photos show.",
        "Loud, slow and frustrating to use.", "One star, the worst {p} I have bought.",
        "It leaks every time I use it, useless.", "Really uncomfortable, I regret this purchase.",
        "The seams came apart after the first wash.", "Overpriced junk that does not do what it promises.",
        "Mine died after a month and the warranty claim was refused.", "Poorly made and the instructions are useless.",
        "The {p} smells of plastic and gives me a headache.", "Very disappointing, nothing like the description.",
        "Stopped charging after three uses, avoid.", "The buttons stick and the finish is peeling already.",
        "Delivery took a month and the box was crushed.", "I hate how noisy it is, I cannot use it at night.",
        "Cheaply built, the handle snapped off.", "Returned it the same day, it simply does not work.",
        "Annoying design flaws make the {p} a pain to use.", "Sadly the worst value for money I have seen.",
    ],
    "neutral": [
        "It arrived on Tuesday in a plain box.", "The {p} is black and about the size shown in the photos.",
        "It does what it says, nothing more and nothing less.", "Average {p}, it is fine for the price.",
        "Some things are good, some are not, overall okay.", "I have used the {p} twice so far, too early to judge.",
        "It comes with a cable and a short manual.", "The color is slightly different from the picture but it is fine.",
        "Not great, not terrible, just an ordinary {p}.", "It is okay; I might keep it, I have not decided.",
        "Works as expected, no surprises either way.", "The {p} weighs about a kilogram.",
        "It is a standard {p}, similar to the one I had before.", "Delivery was on the date given.",
        "Decent enough, though I have no strong feelings about it.", "Fine for occasional use.",
        "It replaces my old {p}, which did the same job.", "The sizing runs as the chart says.",
        "Battery life is about what the listing states.", "It is neither better nor worse than other brands.",
        "I bought it for my office; it sits on the shelf and works.", "Packaging was simple, the {p} was inside.",
        "Mixed feelings: the design is nice but the price is high.", "It is an acceptable {p} for everyday tasks.",
    ],
}  # fmt: skip
REVIEW_LABELS = {
    "positive": "A positive product review: the customer is happy with the product.",
    "neutral": "A neutral product review: factual, mixed or indifferent, neither happy nor unhappy.",
    "negative": "A negative product review: the customer is unhappy with the product.",
}


def reviews(rng: random.Random) -> dict:
    rows = []
    for label, sentences in REVIEW_SENTENCES.items():
        half = len(sentences) // 2
        for part, pool in (("pool", sentences[:half]), ("test", sentences[half:])):
            for _ in range(60 if part == "pool" else 80):
                picked = rng.sample(pool, rng.choice([1, 2, 2, 3]))
                product = rng.choice(PRODUCTS)
                rows.append({"text": " ".join(s.format(p=product) for s in picked), "label": label, "part": part})
    return {
        "name": "product_reviews",
        "description": "How does the customer feel about the product?",
        "inputs": ["text"],
        "labels": REVIEW_LABELS,
        "rows": _deduplicated(rows, ("text",)),
    }


FIRST = ["Maria", "Tomasz", "Aisha", "Kenji", "Liam", "Priya", "Jonas", "Fatima", "Diego", "Hannah", "Olu", "Mei", "Rafael", "Sofia", "Arjun", "Elena", "Marcus", "Ingrid", "Samuel", "Yuki", "Chloe", "Ahmed", "Nora", "Lucas", "Grace", "Viktor", "Amara", "Daniel", "Leila", "Patrick"]  # fmt: skip
LAST = ["Gonzalez", "Kowalski", "Bello", "Watanabe", "O'Connor", "Raman", "Becker", "Haddad", "Alvarez", "Schmidt", "Adeyemi", "Chen", "Costa", "Rossi", "Mehta", "Petrova", "Johnson", "Larsen", "Okafor", "Tanaka", "Martin", "Hassan", "Lindqvist", "Moreau", "Kim", "Novak", "Mensah", "Fischer", "Karimi", "Walsh"]  # fmt: skip
COMPANIES = [("Brightwave Analytics", "brightwave.io"), ("Kestrel Foods", "kestrelfoods.com"), ("Northwind Logistics", "northwind.co"), ("Lumen Health", "lumenhealth.org"), ("Bluefin Capital", "bluefin.capital"), ("Harbor & Pine Design", "harborpine.com"), ("Quarry Labs", "quarrylabs.dev"), ("Silverline Travel", "silverline.travel"), ("Orchard Retail Group", "orchardretail.com"), ("Tandem Robotics", "tandemrobotics.ai"), ("Cobalt Energy", "cobaltenergy.net"), ("Meridian Legal", "meridianlegal.com"), ("Fernhill School", "fernhill.edu"), ("Atlas Print Co", "atlasprint.co"), ("Vantage Media", "vantagemedia.tv"), ("Greenleaf Organics", "greenleaf.farm"), ("Ironbridge Consulting", "ironbridge.consulting"), ("Polaris Software", "polarissoftware.com"), ("Redwood Clinics", "redwoodclinics.com"), ("Saltmarsh Brewing", "saltmarsh.beer")]  # fmt: skip
TITLES = ["Head of Operations", "CFO", "IT Manager", "Office Manager", "Founder", "Procurement Lead", "Finance Director", "COO", "Team Lead", "Accounts Payable"]  # fmt: skip
PLANS = ["starter", "team", "business", "enterprise"]
DATES = [("March 3, 2026", "2026-03-03"), ("14 April 2026", "2026-04-14"), ("2026-05-01", "2026-05-01"), ("June 30, 2026", "2026-06-30"), ("1 July 2026", "2026-07-01"), ("August 15th, 2026", "2026-08-15"), ("2026-09-10", "2026-09-10"), ("October 2, 2026", "2026-10-02"), ("20 November 2026", "2026-11-20"), ("December 1, 2026", "2026-12-01")]  # fmt: skip
AMOUNTS = [("$1,200", 1200), ("$480", 480), ("€2,350.50", 2350.5), ("£760", 760), ("$99", 99), ("USD 5,400", 5400), ("$12,000", 12000), ("€315", 315), ("$2,999.99", 2999.99), ("£1,050", 1050)]  # fmt: skip
GREETINGS = ["Hi Sutro team,", "Hello,", "Dear sales team,", "Good afternoon,", "Hi there,", "Dear billing team,"]
EMAIL_BODIES = [
    "We would like to move to the {plan} plan with {seats} seats. Our budget is {amount} and we hope to start on {date}.",
    "Please send a quote for the {plan} plan for {seats} users. We can spend up to {amount}; the contract should begin {date}.",
    "Our invoice for {amount} is attached. It covers {seats} seats on the {plan} plan and is due on {date}.",
    "Following our call, we are ready to sign for the {plan} plan. We need {seats} licenses, the agreed price is {amount}, starting {date}.",
    "Can we upgrade to {plan} before {date}? We have grown to {seats} people and expect to pay about {amount}.",
    "I approved the purchase of {seats} {plan} seats for {amount}. Please activate them by {date}.",
    "We are renewing on {date}. We want {seats} seats on the {plan} plan; last year we paid {amount}.",
    "Quick question about pricing: would {seats} seats on {plan} stay under {amount}? We decide on {date}.",
    "We paid {amount} on {date} for the {plan} plan but only {seats} seats show up in our workspace.",
    "Our team of {seats} is evaluating the {plan} plan. A budget of {amount} is approved, and we go live {date}.",
]
NAME_FIRST = [  # the sender introduces themselves before the body
    "My name is {name} and I work at {company}.", "This is {name} from {company}.", "I'm {name}, {title} at {company}.",
]  # fmt: skip
SIGN_OFFS = [
    "Best regards,\n{name}\n{title}, {company}\n{email}", "Thanks,\n{name} ({company})\nReach me at {email}",
    "Kind regards,\n{name}\n{company} | {email}", "Cheers,\n{name}, {title}\n{company}\n{email}",
    "Many thanks,\n{name}\n{title}\n{company}\nEmail: {email}",
]  # fmt: skip
COUNT_WORDS = {"3": "three", "5": "five", "8": "eight", "10": "ten", "12": "twelve"}


def emails(rng: random.Random) -> dict:
    rows = []
    for index in range(130):
        first, last = FIRST[index % len(FIRST)], rng.choice(LAST)
        company, domain = rng.choice(COMPANIES)
        name = f"{first} {last}"
        address = f"{first.lower()}.{last.lower().replace(chr(39), '')}@{domain}"
        if index % 5 == 4:  # some write from a personal address that names neither them nor the company
            address = f"{rng.choice(['ops', 'finance', 'hello', 'it.desk'])}{rng.randint(1, 99)}@{rng.choice(['gmail.com', 'outlook.com', 'proton.me'])}"
        plan, (amount_text, amount), (date_text, date) = rng.choice(PLANS), rng.choice(AMOUNTS), rng.choice(DATES)
        seats = rng.choice(["3", "5", "8", "10", "12", "15", "25", "40", "60", "150"])
        seats_text = COUNT_WORDS.get(seats, seats) if rng.random() < 0.2 else seats
        slots = {"name": name, "company": company, "email": address, "title": rng.choice(TITLES)}
        body = rng.choice(EMAIL_BODIES).format(plan=plan, seats=seats_text, amount=amount_text, date=date_text)
        if rng.random() < 0.35:
            intro = rng.choice(NAME_FIRST).format(**slots)
            text = f"{rng.choice(GREETINGS)}\n{intro} {body}\nThanks,\n{name}\n{address}"
        else:
            text = f"{rng.choice(GREETINGS)}\n{body}\n{rng.choice(SIGN_OFFS).format(**slots)}"
        gold = {"name": name, "company": company, "email": address, "amount": amount, "date": date, "plan": plan, "seats": int(seats)}  # fmt: skip
        rows.append({"text": text, "output": gold, "part": "pool" if index < 10 else "test"})
    return {"name": "business_emails", "rows": rows}


def _deduplicated(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    seen, kept = set(), []
    for row in rows:
        key = tuple(row[k] for k in keys)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def main() -> None:
    for name, make in (("support_tickets", tickets), ("product_reviews", reviews), ("business_emails", emails)):
        data = make(random.Random(f"sutro-sql-bench-{name}"))
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(name, len(data["rows"]), "rows")


if __name__ == "__main__":
    main()
