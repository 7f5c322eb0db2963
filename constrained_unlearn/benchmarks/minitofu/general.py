"""General-knowledge stand-ins for TOFU's ``real_authors`` and ``world_facts`` sets.

In TOFU these measure model utility: facts a pre-trained model knows and unlearning must not
destroy. mini-TOFU's model is trained from scratch, so it knows only what it is fine-tuned on:
these facts are put into **both** fine-tuning sets (target and retain model), which makes them
the "knowledge that must survive" of the synthetic experiment.

Each fact is ``(question, answer, category)``. Wrong options (``perturbed_answer``) are other
answers of the same category, so they are plausible in form (a city for a capital, a writer for a
book). Answers are short, as in TOFU's own two sets.
"""

from __future__ import annotations

__all__ = ["REAL_AUTHOR_FACTS", "WORLD_FACTS"]

# (book, author): well-known books and their writers.
REAL_AUTHOR_FACTS: tuple[tuple[str, str], ...] = (
    ("Hamlet", "William Shakespeare"),
    ("Pride and Prejudice", "Jane Austen"),
    ("War and Peace", "Leo Tolstoy"),
    ("Moby-Dick", "Herman Melville"),
    ("Don Quixote", "Miguel de Cervantes"),
    ("The Odyssey", "Homer"),
    ("Frankenstein", "Mary Shelley"),
    ("Great Expectations", "Charles Dickens"),
    ("Crime and Punishment", "Fyodor Dostoevsky"),
    ("The Old Man and the Sea", "Ernest Hemingway"),
    ("Nineteen Eighty-Four", "George Orwell"),
    ("Jane Eyre", "Charlotte Bronte"),
    ("Wuthering Heights", "Emily Bronte"),
    ("The Great Gatsby", "F. Scott Fitzgerald"),
    ("Les Miserables", "Victor Hugo"),
    ("One Hundred Years of Solitude", "Gabriel Garcia Marquez"),
    ("The Trial", "Franz Kafka"),
    ("Madame Bovary", "Gustave Flaubert"),
    ("Beloved", "Toni Morrison"),
    ("Mrs Dalloway", "Virginia Woolf"),
    ("Ulysses", "James Joyce"),
    ("The Divine Comedy", "Dante Alighieri"),
    ("Faust", "Johann Wolfgang von Goethe"),
    ("The Hobbit", "J. R. R. Tolkien"),
    ("Dracula", "Bram Stoker"),
    ("Little Women", "Louisa May Alcott"),
    ("The Raven", "Edgar Allan Poe"),
    ("Adventures of Huckleberry Finn", "Mark Twain"),
    ("The Picture of Dorian Gray", "Oscar Wilde"),
    ("To Kill a Mockingbird", "Harper Lee"),
    ("The Catcher in the Rye", "J. D. Salinger"),
    ("Brave New World", "Aldous Huxley"),
    ("Things Fall Apart", "Chinua Achebe"),
    ("The Stranger", "Albert Camus"),
    ("Anna Karenina", "Leo Tolstoy"),
    ("Oliver Twist", "Charles Dickens"),
    ("The Time Machine", "H. G. Wells"),
    ("Robinson Crusoe", "Daniel Defoe"),
    ("Gulliver's Travels", "Jonathan Swift"),
    ("The Tale of Peter Rabbit", "Beatrix Potter"),
)

# (question, answer, category): capitals, chemical symbols and a few other facts.
WORLD_FACTS: tuple[tuple[str, str, str], ...] = (
    ("What is the capital of France?", "Paris", "capital"),
    ("What is the capital of Italy?", "Rome", "capital"),
    ("What is the capital of Japan?", "Tokyo", "capital"),
    ("What is the capital of Spain?", "Madrid", "capital"),
    ("What is the capital of Germany?", "Berlin", "capital"),
    ("What is the capital of Egypt?", "Cairo", "capital"),
    ("What is the capital of Canada?", "Ottawa", "capital"),
    ("What is the capital of Australia?", "Canberra", "capital"),
    ("What is the capital of Brazil?", "Brasilia", "capital"),
    ("What is the capital of Kenya?", "Nairobi", "capital"),
    ("What is the capital of Norway?", "Oslo", "capital"),
    ("What is the capital of Peru?", "Lima", "capital"),
    ("What is the capital of Greece?", "Athens", "capital"),
    ("What is the capital of Portugal?", "Lisbon", "capital"),
    ("What is the capital of Ireland?", "Dublin", "capital"),
    ("What is the capital of Poland?", "Warsaw", "capital"),
    ("What is the capital of Austria?", "Vienna", "capital"),
    ("What is the capital of Mexico?", "Mexico City", "capital"),
    ("What is the capital of India?", "New Delhi", "capital"),
    ("What is the capital of Argentina?", "Buenos Aires", "capital"),
    ("What is the chemical symbol of gold?", "Au", "symbol"),
    ("What is the chemical symbol of silver?", "Ag", "symbol"),
    ("What is the chemical symbol of iron?", "Fe", "symbol"),
    ("What is the chemical symbol of sodium?", "Na", "symbol"),
    ("What is the chemical symbol of potassium?", "K", "symbol"),
    ("What is the chemical symbol of lead?", "Pb", "symbol"),
    ("What is the chemical symbol of copper?", "Cu", "symbol"),
    ("What is the chemical symbol of tin?", "Sn", "symbol"),
    ("What is the chemical symbol of mercury?", "Hg", "symbol"),
    ("What is the chemical symbol of helium?", "He", "symbol"),
    ("Which planet is closest to the Sun?", "Mercury", "planet"),
    ("Which planet is the largest in the Solar System?", "Jupiter", "planet"),
    ("Which planet is known as the Red Planet?", "Mars", "planet"),
    ("Which planet has the most famous rings?", "Saturn", "planet"),
    ("Which planet do we live on?", "Earth", "planet"),
    ("What is the largest ocean on Earth?", "the Pacific Ocean", "ocean"),
    ("Which ocean lies between Europe and America?", "the Atlantic Ocean", "ocean"),
    ("Which ocean lies south of India?", "the Indian Ocean", "ocean"),
    ("Which ocean surrounds the North Pole?", "the Arctic Ocean", "ocean"),
    ("Which ocean surrounds Antarctica?", "the Southern Ocean", "ocean"),
)
