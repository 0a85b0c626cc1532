"""A random phone for one episode: contacts with look-alike names, a catalogue with look-alike products, Wi-Fi
networks and Bluetooth devices with look-alike names, notes, settings, all drawn from one `random.Random`."""

from __future__ import annotations

import random

from tracer1.envs.builtin.model import DEFAULT_SETTINGS, Contact, Note, Product, Screen, State, World

FIRST = ["Anna", "Ana", "Ben", "Bea", "Carla", "Carl", "Dan", "Dana", "Eli", "Ella", "Finn", "Fiona", "Gus",
         "Grace", "Hana", "Hugo", "Ivan", "Ivy", "Jon", "Joan", "Kai", "Kim", "Leo", "Lea", "Mia", "Max", "Nina",
         "Noah", "Omar", "Olga", "Paul", "Pia", "Ravi", "Rosa", "Sam", "Sara", "Tom", "Tara", "Uma", "Wes", "Zoe"]
LAST = ["Lee", "Li", "Ortiz", "Ortega", "Novak", "Nowak", "Singh", "Brown", "Braun", "Khan", "Kahn", "Rossi",
        "Ross", "Meyer", "Maier", "Silva", "Sousa", "Park", "Parker", "Costa"]
CATALOGUE = {
    "Books": ["Paperback Novel", "Hardcover Novel", "Mystery Novel", "Cookbook", "Travel Guide", "City Guide",
              "Poetry Collection", "Comic Book", "Atlas", "Dictionary", "Art Book", "Sketching Guide"],
    "Electronics": ["USB Cable", "USB-C Cable", "Phone Charger", "Wireless Mouse", "Headphones", "Earbuds",
                    "Power Bank", "Bluetooth Speaker", "Keyboard", "Webcam", "Smart Plug", "Desk Lamp"],
    "Toys": ["Puzzle", "Jigsaw Puzzle", "Toy Car", "Toy Train", "Yo-yo", "Kite", "Building Blocks", "Plush Bear",
             "Board Game", "Card Game", "Toy Robot", "Bubble Wand"],
    "Kitchen": ["Kitchen Gloves", "Oven Mitt", "Chef Knife", "Bread Knife", "Cutting Board", "Mixing Bowl",
                "Tea Kettle", "Coffee Mug", "Frying Pan", "Whisk", "Spatula", "Salad Bowl"],
    "Garden": ["Garden Gloves", "Watering Can", "Seed Pack", "Flower Pot", "Garden Hose", "Rake", "Trowel",
               "Pruning Shears", "Bird Feeder", "Plant Food", "Garden Kneeler", "Plant Pot"],
}
BLURBS = ["Our best seller.", "Loved by customers.", "New this season.", "Great value.", "Ships in 2 days.",
          "Limited stock."]
NETWORKS = ["CafeNet", "CafeNet-5G", "Cafe Guest", "HomeWiFi", "HomeWiFi-2", "Office", "Office-Guest", "Library",
            "Airport Free WiFi", "Neighbor", "Pixel Hotspot", "TP-Link 4F"]
DEVICES = ["Car Audio", "Car Kit", "Headphones Pro", "Earbuds", "Smart Watch", "Speaker", "Kitchen Speaker",
           "Laptop"]
NOTES = {"Groceries": "milk, eggs, bread", "Groceries list": "apples, rice", "Trip plan": "train at 9",
         "Trip ideas": "lakes, mountains", "Books to read": "Dune, Emma", "Gift ideas": "scarf for mum",
         "Workout": "run 5 km", "Recipes": "lentil soup", "Meeting notes": "budget review",
         "To do": "call the bank", "Birthday list": "Ivy on 3 June", "Packing": "charger, passport"}
PHONE_MODELS = ["Pixel 7", "Pixel 8", "Galaxy A54", "Moto G84"]


def make_world(rng: random.Random) -> World:
    categories = tuple(CATALOGUE)
    products = []
    for category in categories:
        names = rng.sample(CATALOGUE[category], rng.randint(5, 10))
        prices = rng.sample(range(199, 6000, 50), len(names))  # distinct within a category: one cheapest
        products += [Product(n, category, p, rng.choice(BLURBS)) for n, p in zip(names, prices)]
    networks = tuple(rng.sample(NETWORKS, rng.randint(5, 10)))
    devices = tuple(rng.sample(DEVICES, rng.randint(3, 5)))
    return World(tuple(products), categories, networks, devices, rng.choice(PHONE_MODELS))


def make_state(rng: random.Random, world: World) -> State:
    names = sorted({f"{f} {l}" for f, l in zip(rng.choices(FIRST, k=40), rng.choices(LAST, k=40))},
                   key=str.casefold)
    names = rng.sample(names, min(len(names), rng.randint(14, 26)))
    contacts = sorted((Contact(n, f"555-{rng.randint(100, 999):03d}-{rng.randint(0, 9999):04d}",
                               n.lower().replace(" ", ".") + "@mail.com") for n in names),
                      key=lambda c: c.name.casefold())
    settings = dict(DEFAULT_SETTINGS)
    settings.update(wifi=rng.random() < 0.6, bluetooth=rng.random() < 0.4, dark_mode=rng.random() < 0.3,
                    brightness=rng.randrange(10, 100, 10), volume=rng.randint(1, 9), dnd=rng.random() < 0.2,
                    vibrate=rng.random() < 0.7, font_size=rng.choice(["Small", "Default", "Default", "Large"]))
    if settings["wifi"] and rng.random() < 0.5:
        settings["wifi_network"] = rng.choice(world.networks)
    if settings["bluetooth"] and rng.random() < 0.3:
        settings["bt_device"] = rng.choice(world.devices)
    titles = rng.sample(sorted(NOTES), rng.randint(3, 8))
    return State(stack=[Screen("home")], settings=settings, contacts=contacts,
                 favourites=[c.name for c in contacts if rng.random() < 0.15],
                 notes=[Note(t, NOTES[t]) for t in titles])
