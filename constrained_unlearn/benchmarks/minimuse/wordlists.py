"""Word lists for the fictitious news of mini-MUSE.

Every town, person, company, team and festival here is invented for this library (the person
names reuse mini-TOFU's syllables); units and ordinary nouns are plain English. Changing any
list changes every generated corpus, so a change here must bump
`constrained_unlearn.benchmarks.minimuse.generator.GENERATOR_VERSION`.
"""

from __future__ import annotations

from constrained_unlearn.benchmarks.minitofu.wordlists import (
    FIRST_NAME_HEADS,
    FIRST_NAME_TAILS,
    SURNAME_ENDINGS,
    SURNAME_STEMS,
)

__all__ = [
    "ANIMALS",
    "COMPANY_KINDS",
    "COMPANY_STEMS",
    "CUPS",
    "FESTIVAL_KINDS",
    "FIRST_NAME_HEADS",
    "FIRST_NAME_TAILS",
    "MASCOTS",
    "MONTHS",
    "PARTIES",
    "PLACES",
    "PRODUCTS",
    "QUOTES",
    "STADIUM_KINDS",
    "STRUCTURES",
    "SURNAME_ENDINGS",
    "SURNAME_STEMS",
    "TOWNS",
]

TOWNS: tuple[str, ...] = (
    "Varnholt", "Quillmere", "Ostravel", "Brenmoor", "Caskadel", "Dornwick", "Elsivar",
    "Faldren", "Glimmerby", "Harrowvale", "Istrelle", "Jasperholm", "Korvanth", "Lumenport",
    "Marrowgate", "Nethervane", "Orrisfeld", "Pellby", "Quorra", "Rimeholt", "Sablemere",
    "Tarnwell", "Umbravel", "Veskaport", "Wyrmstead", "Yselmoor", "Zanthoria", "Ashcombe",
    "Briarholt", "Coldspire", "Duskmere", "Emberfall", "Fernhollow", "Greymantle",
    "Hollowmere", "Ironvale", "Kestrelhaven", "Lowmarsh", "Mistral", "Norrowby",
)  # fmt: skip

MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

STRUCTURES: tuple[str, ...] = (
    "bridge", "library", "tram line", "harbour wall", "concert hall", "water plant",
    "swimming pool", "railway station", "hospital wing", "ferry terminal", "bus depot",
    "museum", "sports centre", "market hall", "cycle path", "school",
)  # fmt: skip

COMPANY_STEMS: tuple[str, ...] = (
    "Harrowgate", "Bluefern", "Stonecrest", "Wrenfield", "Copperleaf", "Saltmarsh",
    "Greywater", "Thistledown", "Larkspur", "Oakhaven", "Moonridge", "Redbrook", "Fairwind",
    "Ironbark", "Ashgrove", "Starling", "Cobblestone", "Westmere", "Brightwell", "Kingsfold",
)  # fmt: skip
COMPANY_KINDS: tuple[str, ...] = (
    "Works", "Holdings", "Group", "Engineering", "Industries", "Partners", "Systems", "Labs",
)  # fmt: skip

PARTIES: tuple[str, ...] = (
    "the Harbour Party", "the Green Lantern Party", "the Civic Union", "the Valley League",
    "the Farmers' Alliance", "the New Commons", "the Lighthouse Movement", "the River Party",
)  # fmt: skip

MASCOTS: tuple[str, ...] = (
    "Herons", "Wolves", "Otters", "Falcons", "Badgers", "Stags", "Ravens", "Foxes",
    "Hawks", "Lynxes", "Bears", "Owls",
)  # fmt: skip
STADIUM_KINDS: tuple[str, ...] = ("Park", "Ground", "Arena", "Field", "Stadium")
CUPS: tuple[str, ...] = (
    "the Northern Shield", "the Harbour Cup", "the Lantern Trophy", "the Coastal League",
    "the Valley Cup", "the Founders' Cup",
)  # fmt: skip

PRODUCTS: tuple[str, ...] = (
    "an electric ferry", "a solar roof tile", "a folding bicycle", "a water filter",
    "a cargo drone", "a heat pump", "a weather buoy", "a reading lamp", "a tidal turbine",
    "a bread oven", "a hearing aid", "a seed drill",
)  # fmt: skip

ANIMALS: tuple[str, ...] = (
    "frog", "beetle", "orchid", "moth", "lizard", "snail", "fern", "catfish", "spider",
    "mushroom", "bat", "songbird",
)  # fmt: skip
PLACES: tuple[str, ...] = (
    "the Velmar Forest", "Lake Oskel", "the Dunraith Hills", "the Saltgrey Marshes",
    "the Korr Valley", "Mount Ember", "the Lisk Caves", "the Brannock Moors",
    "the Ferrow Delta", "the Ashen Woods",
)  # fmt: skip

FESTIVAL_KINDS: tuple[str, ...] = (
    "Folk", "Jazz", "Film", "Lantern", "Harvest", "Kite", "Poetry", "Cheese",
)  # fmt: skip

QUOTES: tuple[str, ...] = (
    "a proud day for everyone here",
    "long overdue",
    "the result of years of hard work",
    "a promise kept to our families",
    "only the beginning",
    "better than we dared to hope",
    "a chance to show what we can do",
    "good news for the whole region",
    "something the children will remember",
    "a fair reward for patience",
    "a vote of confidence in the future",
    "exactly what the town needed",
    "a lesson for the next generation",
    "worth every sleepless night",
    "a gift to the people who stayed",
    "a sign that the hard times are over",
)  # fmt: skip
