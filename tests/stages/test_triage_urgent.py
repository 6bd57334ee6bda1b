"""Stage 7b: the support guides' urgent list becomes ``immediate`` in all five languages.

The guides' list: checkout, payment, cart, login, prices, site down, order processing,
stock, and synchronisation with inventory, payment or shipping providers. One ordinary
sentence per item and language, as a merchant would write it.
"""

from __future__ import annotations

import pytest

from mailgate.triage import TriageRules, triage

RULES = TriageRules.load()

URGENT = {
    "checkout": {
        "en": "Customers get an error at checkout since this morning.",
        "ro": "Clienții primesc eroare la finalizarea comenzii de azi dimineață.",
        "nl": "Klanten krijgen een fout bij het afrekenen sinds vanochtend.",
        "pt": "Os clientes recebem um erro ao finalizar a compra desde hoje cedo.",
        "pl": "Klienci dostają błąd przy finalizacji zamówienia od rana.",
    },
    "payment": {
        "en": "Card payments are not working on our shop.",
        "ro": "Plățile cu cardul nu funcționează în magazin.",
        "nl": "Betalingen met iDEAL werken niet in onze winkel.",
        "pt": "O pagamento com cartão não está funcionando na loja.",
        "pl": "Płatności kartą nie działają w naszym sklepie.",
    },
    "cart": {
        "en": "Products cannot be added to the cart anymore.",
        "ro": "Produsele nu mai pot fi adăugate în coș.",
        "nl": "Producten kunnen niet meer in de winkelwagen worden gezet.",
        "pt": "Os produtos não podem mais ser adicionados ao carrinho.",
        "pl": "Nie da się dodać produktów do koszyka.",
    },
    "login": {
        "en": "Our customers cannot log in to their accounts.",
        "ro": "Clienții nu se pot autentifica în cont.",
        "nl": "Onze klanten kunnen niet inloggen op hun account.",
        "pt": "Nossos clientes não conseguem fazer login na conta.",
        "pl": "Nasi klienci nie mogą się zalogować do konta.",
    },
    "prices": {
        "en": "The shop shows wrong prices for all products.",
        "ro": "Magazinul afișează prețuri greșite la toate produsele.",
        "nl": "De winkel toont verkeerde prijzen bij alle producten.",
        "pt": "A loja mostra preços errados em todos os produtos.",
        "pl": "Sklep pokazuje złe ceny wszystkich produktów.",
    },
    "site down": {
        "en": "Our website is down, nobody can open it.",
        "ro": "Site-ul nu merge deloc, nu se deschide.",
        "nl": "Onze webshop ligt plat, niemand kan hem openen.",
        "pt": "Nosso site está fora do ar, ninguém consegue abrir.",
        "pl": "Nasza strona nie działa, nikt nie może jej otworzyć.",
    },
    "order processing": {
        "en": "New orders are not being processed since yesterday.",
        "ro": "Comenzile nu se mai procesează de ieri.",
        "nl": "Nieuwe bestellingen worden niet verwerkt sinds gisteren.",
        "pt": "Os pedidos não estão sendo processados desde ontem.",
        "pl": "Zamówienia nie są przetwarzane od wczoraj.",
    },
    "stock": {
        "en": "All products show out of stock although we have them.",
        "ro": "Toate produsele apar fără stoc deși le avem.",
        "nl": "Alle producten staan op geen voorraad terwijl we ze hebben.",
        "pt": "Todos os produtos aparecem sem estoque, mas temos.",
        "pl": "Wszystkie produkty mają zerowy stan magazynowy, choć je mamy.",
    },
    "sync with providers": {
        "en": "The sync with our shipping provider stopped, no AWBs are made.",
        "ro": "Sincronizarea cu curierul s-a oprit, nu se mai generează AWB.",
        "nl": "De synchronisatie met onze verzendpartner is gestopt.",
        "pt": "A sincronização com a transportadora parou.",
        "pl": "Synchronizacja z firmą kurierską przestała działać.",
    },
}

CASES = [
    pytest.param(text, id=f"{item}-{lang}")
    for item, by_language in URGENT.items()
    for lang, text in by_language.items()
]


@pytest.mark.parametrize("text", CASES)
def test_every_item_of_the_urgent_list_is_immediate(text: str) -> None:
    result = triage("Ajutor", text, RULES)
    assert result.priority == "immediate", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "How can I change the logo in the header?",
        "Cum pot schimba logo-ul din antet?",
        "Hoe kan ik het logo in de header wijzigen?",
        "Como posso mudar o logotipo no cabeçalho?",
        "Jak mogę zmienić logo w nagłówku?",
    ],
)
def test_an_ordinary_question_is_not_urgent(text: str) -> None:
    assert triage("Logo", text, RULES).priority is None
