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


def amounts(found):
    return [(f.value, f.currency) for f in found]


def test_money_reads_the_currency_of_symbols_codes_before_or_after_and_words():
    cases = {
        "The invoice is 300 EUR": (300, "EUR"),
        "EUR 300 due": (300, "EUR"),
        "owe 300EUR": (300, "EUR"),
        "owe EUR300": (300, "EUR"),
        "USD 1,200.50 total": (1200.5, "USD"),
        "300 euros": (300, "EUR"),
        "20 dollars": (20, "USD"),
        "5 pounds": (5, "GBP"),
        "45 Canadian dollars": (45, "CAD"),
        "£12 fee": (12, "GBP"),
        "¥5,000": (5000, "JPY"),
        "₹250": (250, "INR"),
        "Rs. 500": (500, "INR"),
        "R$ 40": (40, "BRL"),
        "C$15": (15, "CAD"),
        "Price: CHF 80": (80, "CHF"),
        "1000 SEK": (1000, "SEK"),
        "TRY 3 now": (3, "TRY"),
    }
    for text, expected in cases.items():
        assert amounts(parsers.money(text)) == [expected], text


def test_money_does_not_take_words_or_lowercase_rare_codes_for_currencies():
    for text in ("try 3 times", "the TOP 5 items", "ALL 3 items", "cad 5", "order ORD-9 $15 lost"):
        assert [f for f in parsers.money(text) if f.value != 15] == [], text


def test_money_reads_european_swiss_and_spaced_separators():
    cases = {
        "€1.200,50": 1200.5,
        "1.200,50 EUR": 1200.5,
        "€1.200": 1200,
        "1.200.000 EUR": 1_200_000,
        "12,50 €": 12.5,
        "$1,200": 1200,
        "$1.200": 1.2,
        "€1.250 million": 1_250_000,
        "1'200.50 CHF": 1200.5,
        "10 000 dollars": 10_000,
        "$2.174T.": 2_174_000_000_000,
    }
    for text, expected in cases.items():
        assert values(parsers.money(text)) == [expected], text


def test_money_reads_negative_and_accounting_amounts():
    assert values(parsers.money("-$50, $-60, −€20, -15€ and ($99.99)")) == [-50, -60, -20, -15, -99.99]


def test_money_ranges_give_both_ends_in_the_currency_and_scale_stated_once():
    assert amounts(parsers.money("$10-20")) == [(10, "USD"), (20, "USD")]
    assert amounts(parsers.money("10-20 EUR")) == [(10, "EUR"), (20, "EUR")]
    assert amounts(parsers.money("5 to 10 dollars")) == [(5, "USD"), (10, "USD")]
    assert amounts(parsers.money("$3-5 million")) == [(3_000_000, "USD"), (5_000_000, "USD")]


def test_numbers_read_ranges_money_signs_and_european_amounts():
    assert values(parsers.numbers("10-20 people and pages 3–4")) == [10, 20, 3, 4]
    assert values(parsers.numbers("revenue ($99.99), 1.200,50 units, 5k users, 10m deep")) == [-99.99, 1200.5, 5000, 10]
    assert values(parsers.numbers("ORD-1042 shipped")) == []


def test_currencies_are_iso_codes_of_amounts_and_named_currencies():
    text = "We invoice in euros. Currency: GBP, then 300 CHF and $10-20, pounds sterling."
    assert values(parsers.currencies(text)) == ["EUR", "GBP", "CHF", "USD", "GBP"]
    assert parsers.currencies("Nothing to see, 5 apples") == []


def test_currency_code_maps_codes_symbols_and_names():
    names = ["usd", "€", "Euros", "US dollars", "Canadian Dollar", "Dollar", "Pound", "pounds sterling", "Yen"]
    assert [parsers.currency_code(n) for n in names] == ["USD", "EUR", "EUR", "USD", "CAD", "USD", "GBP", "GBP", "JPY"]
    assert parsers.currency_code("widgets") is None and parsers.currency_code(None) is None


def test_dates_read_day_first_slashes_iso_with_time_and_year_first_slashes():
    text = "on 13/03/2024, at 2024-03-05T10:00, filed 2024/03/06, due 3/7/2024"
    assert values(parsers.dates(text)) == ["2024-03-13", "2024-03-05", "2024-03-06", "2024-03-07"]


def polarities(text, concept):
    return values(parsers.polarity(text, concept))


def test_polarity_reads_negative_prefixes_and_negations_before_the_concept():
    assert polarities("The invoice is unpaid.", "paid") == [False]
    assert polarities("The fare is non-refundable.", "refundable") == [False]
    assert polarities("An incomplete form.", "complete") == [False]
    assert polarities("It has not been paid, it isn't paid, they never paid.", "paid") == [False, False, False]
    assert polarities("Your parcel has not yet been shipped.", "shipped") == [False]
    assert polarities("Paid: no. Refunded? yes", "paid") == [False]


def test_polarity_keeps_positive_statements_and_stops_at_the_clause():
    assert polarities("Paid in full. It was paid.", "paid") == [True, True]
    assert polarities("It was not late, and it was paid.", "paid") == [True]
    assert polarities("Not late but shipping today.", "shipped") == [True]
    assert polarities("It is not unpaid.", "paid") == [True]


def test_a_negation_reaches_the_concept_only_across_auxiliaries_and_adverbs():
    assert polarities("It has not yet been fully paid.", "paid") == [False]
    assert polarities("It cannot be refunded, and is no longer refundable.", "refundable") == [False, False]
    assert polarities("I did not know it was paid.", "paid") == [True]
    assert polarities("There is no doubt it was shipped.", "shipped") == [True]


def test_polarity_skips_questions_and_other_words():
    assert polarities("Has the invoice been paid?", "paid") == []
    assert polarities("The shipment and payment are late.", "paid") == []


def test_a_negative_concept_reads_its_positive_word_as_negated():
    assert polarities("It was paid. It is unpaid. It has not been paid.", "unpaid") == [False, True, True]


def test_numbers_skip_clock_times():
    assert values(parsers.numbers("At 2 pm, or 10:30, until 2.17pm or 9 a.m., 3 items for 2 amps")) == [3, 2]


def test_money_in_words_before_a_currency_word_or_code():
    text = "It cost twenty dollars, then five million euros and forty-two GBP."
    assert amounts(parsers.money(text)) == [(20, "USD"), (5_000_000, "EUR"), (42, "GBP")]
    assert values(parsers.numbers(text)) == [20, 5_000_000, 42]
