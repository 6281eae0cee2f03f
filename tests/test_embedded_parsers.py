"""The extraction parsers on fixed texts: what they find, and what they must not mistake for a value."""

from sutro_sql.engines import parsers


def values(found):
    return [f.value for f in found]


def test_money_reads_symbols_codes_and_scales():
    text = "Charged $49.99 twice, then €1,200 and 2,000 GBP; the deal was $3 million."
    assert values(parsers.money(text)) == [49.99, 1200, 2000, 3_000_000]


def test_money_ignores_plain_numbers_and_code_digits():
    assert parsers.money("I ordered 3 items on 12 March") == []
    assert values(parsers.money("order ORD-9 $15 lost")) == [15]


def test_dates_become_iso_strings():
    text = "Shipped 2024-03-05, due 3/7/2024, paid 9 April 2024 and refunded March 10th, 2024."
    assert values(parsers.dates(text)) == ["2024-03-05", "2024-03-07", "2024-04-09", "2024-03-10"]


def test_impossible_dates_are_skipped():
    assert parsers.dates("on 2024-02-31 or 13/45/2024") == []


def test_emails_and_urls():
    text = "Write to ann.lee+billing@example.co.uk or see https://example.com/help?id=3, or www.example.org."
    assert values(parsers.emails(text)) == ["ann.lee+billing@example.co.uk"]
    assert values(parsers.urls(text)) == ["https://example.com/help?id=3", "www.example.org"]


def test_phones_need_seven_to_fifteen_digits():
    text = "Call +1 (555) 123-4567 or 020 7946 0958, not 12-34."
    assert values(parsers.phones(text)) == ["+1 (555) 123-4567", "020 7946 0958"]


def test_numbers_in_digits_fractions_and_words():
    text = "I want two meters of cotton, 2 1/2 in thick, 1,500,000 km away, -3.5 degrees and 3 million people."
    assert values(parsers.numbers(text)) == [2, 2.5, 1_500_000, -3.5, 3_000_000]


def test_numbers_skip_codes_ordinals_and_values_inside_other_matches():
    text = "Order ORD-1042 on 2024-03-05 in the 21st century, object 06F6, call 555-123-4567, 7 left"
    assert values(parsers.numbers(text)) == [7]


def test_shaped_like_finds_codes_of_the_example_shape():
    text = "Refund ORD-77 and INV-778 but not ord-12 or ORDER-1"
    assert values(parsers.shaped_like(text, ["ORD-1042", "INV-778"])) == ["ORD-77", "INV-778"]
    assert parsers.shaped_like(text, []) == []
