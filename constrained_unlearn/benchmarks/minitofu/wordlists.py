"""Word lists for the fictitious authors of mini-TOFU.

Every person, city, prize and publisher here is invented for this library; genres, jobs and
languages are ordinary words. Changing any list changes every generated data set, so a change
here must bump `constrained_unlearn.benchmarks.minitofu.generator.GENERATOR_VERSION`
(the cache key then changes too).
"""

from __future__ import annotations

__all__ = [
    "CITIES",
    "FIRST_NAME_HEADS",
    "FIRST_NAME_TAILS",
    "GENRES",
    "JOBS",
    "LANGUAGES",
    "PRIZE_COLORS",
    "PRIZE_KINDS",
    "PRIZE_OBJECTS",
    "PUBLISHER_KINDS",
    "PUBLISHER_STEMS",
    "SURNAME_ENDINGS",
    "SURNAME_STEMS",
    "TITLE_ADJECTIVES",
    "TITLE_NOUNS",
]

# Author names are built as <first syllable><second syllable> <surname stem><surname ending>,
# which gives 24 × 16 = 384 first names and 24 × 12 = 288 surnames.
FIRST_NAME_HEADS: tuple[str, ...] = (
    "Ab", "Bel", "Cor", "Dar", "El", "Fen", "Gal", "Hal", "Is", "Jor", "Kel", "Lor",
    "Mar", "Nel", "Or", "Per", "Quin", "Ros", "Sel", "Tam", "Ul", "Vor", "Wen", "Zar",
)  # fmt: skip
FIRST_NAME_TAILS: tuple[str, ...] = (
    "a", "en", "ia", "ion", "is", "o", "ric", "wyn",
    "ard", "ette", "ius", "ora", "an", "eth", "ine", "us",
)  # fmt: skip
SURNAME_STEMS: tuple[str, ...] = (
    "Ash", "Brim", "Cald", "Dun", "Eld", "Frost", "Grim", "Hollo", "Iver", "Kestr", "Lind", "Morr",
    "North", "Oak", "Pell", "Quarr", "Raven", "Stor", "Thorn", "Umber", "Vel", "Whit", "Yarr", "Zen",
)  # fmt: skip
SURNAME_ENDINGS: tuple[str, ...] = (
    "wick", "ford", "mere", "ton", "by", "holm", "ley", "dale", "more", "gate", "well", "shaw",
)  # fmt: skip

CITIES: tuple[str, ...] = (
    "Varnholt", "Quillmere", "Ostravel", "Brenmoor", "Caskadel", "Dornwick", "Elsivar",
    "Faldren", "Glimmerby", "Harrowvale", "Istrelle", "Jasperholm", "Korvanth", "Lumenport",
    "Marrowgate", "Nethervane", "Orrisfeld", "Pellucid Bay", "Quorra", "Rimeholt",
    "Sablemere", "Tarnwell", "Umbravel", "Veskaport", "Wyrmstead", "Yselmoor", "Zanthoria",
    "Ashcombe Reach", "Briarholt", "Coldspire", "Duskmere", "Emberfall", "Fernhollow",
    "Greymantle", "Hollowmere", "Ironvale", "Juniper Falls", "Kestrelhaven", "Lowmarsh",
    "Mistral Point",
)  # fmt: skip

GENRES: tuple[str, ...] = (
    "mystery novels", "science fiction", "romance novels", "poetry", "historical fiction",
    "fantasy", "horror stories", "travel writing", "crime thrillers", "children's books",
    "literary fiction", "biographies", "short stories", "satire", "plays", "essays",
)  # fmt: skip

JOBS: tuple[str, ...] = (
    "a baker", "a carpenter", "a nurse", "an engineer", "a teacher", "a fisherman",
    "a librarian", "a pilot", "a tailor", "a doctor", "a farmer", "a painter",
    "a sailor", "a chemist", "a musician", "a lawyer", "a gardener", "a clockmaker",
    "a surveyor", "a potter", "a journalist", "an architect", "a miner", "a weaver",
)  # fmt: skip

LANGUAGES: tuple[str, ...] = (
    "English", "French", "Spanish", "German", "Italian", "Portuguese",
    "Dutch", "Swedish", "Polish", "Greek", "Turkish", "Danish",
)  # fmt: skip

# Prizes: "the <colour> <object> <kind>", 8 × 8 × 3 = 192 names.
PRIZE_COLORS: tuple[str, ...] = (
    "Silver", "Golden", "Crimson", "Azure", "Ivory", "Emerald", "Amber", "Violet",
)  # fmt: skip
PRIZE_OBJECTS: tuple[str, ...] = (
    "Lantern", "Quill", "Compass", "Feather", "Anchor", "Crown", "Harp", "Key",
)  # fmt: skip
PRIZE_KINDS: tuple[str, ...] = ("Prize", "Award", "Medal")

# Book titles: "The <adjective> <noun>", 24 × 24 = 576 titles.
TITLE_ADJECTIVES: tuple[str, ...] = (
    "Hollow", "Silent", "Burning", "Forgotten", "Hidden", "Broken", "Endless", "Crooked",
    "Distant", "Frozen", "Golden", "Last", "Painted", "Quiet", "Restless", "Scarlet",
    "Shattered", "Sleeping", "Tangled", "Wandering", "Wild", "Winter", "Drowned", "Hungry",
)  # fmt: skip
TITLE_NOUNS: tuple[str, ...] = (
    "River", "Garden", "Lighthouse", "Orchard", "Mirror", "Harbour", "Tower", "Forest",
    "Bridge", "Kingdom", "Letter", "Clock", "Island", "Road", "Shadow", "Song",
    "Door", "Map", "Storm", "Valley", "Lantern", "Feast", "Crown", "Tide",
)  # fmt: skip

# Publishers: "<stem> <kind>", 20 × 3 = 60 names.
PUBLISHER_STEMS: tuple[str, ...] = (
    "Harrowgate", "Bluefern", "Stonecrest", "Wrenfield", "Copperleaf", "Saltmarsh", "Greywater",
    "Thistledown", "Larkspur", "Oakhaven", "Moonridge", "Redbrook", "Fairwind", "Ironbark",
    "Ashgrove", "Starling", "Cobblestone", "Westmere", "Brightwell", "Kingsfold",
)  # fmt: skip
PUBLISHER_KINDS: tuple[str, ...] = ("Press", "Books", "House")
