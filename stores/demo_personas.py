"""Deterministic synthetic personas for the demo store (``stores/demo.zarr``).

Pure Python, no third-party imports: the tests import it without torch or numpy. Every
random draw goes through :meth:`random.Random.random`, the one method whose stream Python
guarantees across versions, and each persona (and each biography) has its own seeded
stream, so a persona does not change when others are added.

Attributes are drawn in causal order so they correlate the way they do in reality:
age -> education -> occupation -> income, experience and comfort with technology; age ->
marital status -> children; occupation -> urban or rural setting. Names and cities follow
the region. The structure is planted on purpose: analyses of the demo store should find it.

Examples
--------
>>> personas = generate_personas(n=3)
>>> [p.id for p in personas]
['p000', 'p001', 'p002']
>>> render(baseline_persona(), "templated").splitlines()[0]
'Persona profile'
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

SEED = 20260127
N_PERSONAS = 320
BASELINE_ID = "baseline_assistant"  # == pvx.BASELINE_ID (kept literal: no pvx import here)
VARIANTS = ("templated", "biography")

EDUCATION_ORDER = (
    "less than high school",
    "high school diploma",
    "some college",
    "bachelor's degree",
    "master's degree",
    "doctorate",
)
INCOME_ORDER = ("low", "lower-middle", "middle", "upper-middle", "high")
TECH_ORDER = ("low", "moderate", "high")

ATTRIBUTE_KINDS: dict[str, str] = {
    "age": "numeric",
    "years_experience": "numeric",
    "children": "numeric",
    "education": "ordinal",
    "income_bracket": "ordinal",
    "tech_comfort": "ordinal",
    "gender": "categorical",
    "region": "categorical",
    "country": "categorical",
    "city": "categorical",
    "urbanicity": "categorical",
    "occupation": "categorical",
    "marital_status": "categorical",
    "hobby": "categorical",
}
ORDERS: dict[str, tuple[str, ...]] = {
    "education": EDUCATION_ORDER,
    "income_bracket": INCOME_ORDER,
    "tech_comfort": TECH_ORDER,
}


@dataclasses.dataclass(frozen=True)
class Persona:
    """One persona: an id, a display name and its attributes (``None`` = missing)."""

    id: str
    name: str
    attributes: Mapping[str, Any]


# --------------------------------------------------------------------------- tables


@dataclasses.dataclass(frozen=True)
class _Occupation:
    label: str
    weight: float  # base frequency
    education: tuple[float, ...]  # relative weight per EDUCATION_ORDER level
    income: float  # typical income index (0 = low ... 4 = high) mid-career
    tech: float  # pull on comfort with technology
    field: str  # subject of study, for biographies
    work: tuple[str, ...]  # first-person sentences about the job ({years} available)
    min_age: int = 18
    max_age: int = 75
    rural: float = 1.0  # multiplier on the chance of living rurally


_OCCUPATIONS = (
    _Occupation(
        "student",
        1.0,
        (0, 3, 5, 2, 0.5, 0),
        0.2,
        0.9,
        "biology",
        (
            "I'm a full-time student, juggling lectures, exams and a part-time job.",
            "These days I'm a student, and most of my week goes to classes and assignments.",
        ),
        max_age=27,
    ),
    _Occupation(
        "retail cashier",
        1.0,
        (3, 6, 3, 0.5, 0, 0),
        0.6,
        -0.2,
        "business",
        (
            "I work the checkout at a supermarket and have done retail for {years}.",
            "I'm a cashier; after {years} in retail I can scan groceries in my sleep.",
        ),
    ),
    _Occupation(
        "construction worker",
        1.1,
        (5, 6, 1.5, 0.2, 0, 0),
        1.6,
        -0.4,
        "engineering",
        (
            "I build houses for a living and have worked construction for {years}.",
            "I'm a construction worker; {years} of scaffolding and concrete so far.",
        ),
        max_age=66,
        rural=1.5,
    ),
    _Occupation(
        "truck driver",
        0.9,
        (3, 6, 2, 0.3, 0, 0),
        1.8,
        -0.3,
        "logistics",
        (
            "I drive long-haul trucks and have spent {years} on the road.",
            "I'm a truck driver; for {years} my office has been the cab of a lorry.",
        ),
        min_age=21,
        max_age=70,
        rural=1.6,
    ),
    _Occupation(
        "farmer",
        0.5,
        (3, 5, 2, 1, 0.2, 0),
        1.3,
        -0.5,
        "agriculture",
        (
            "I run a farm, and I've worked this land for {years}.",
            "I'm a farmer: {years} of early mornings, crops and animals.",
        ),
        rural=12.0,
    ),
    _Occupation(
        "chef",
        0.8,
        (1.5, 5, 3, 1, 0.2, 0),
        1.6,
        0.0,
        "culinary arts",
        (
            "I'm a chef and have worked in restaurant kitchens for {years}.",
            "I cook professionally; {years} of busy services in restaurant kitchens.",
        ),
        max_age=68,
    ),
    _Occupation(
        "electrician",
        0.8,
        (0.5, 5, 4, 0.5, 0, 0),
        2.3,
        0.5,
        "electrical engineering",
        (
            "I'm a licensed electrician with {years} of wiring homes and offices.",
            "I work as an electrician, and I've been in the trade for {years}.",
        ),
        max_age=70,
    ),
    _Occupation(
        "nurse",
        1.0,
        (0, 0.3, 2, 6, 2, 0),
        2.4,
        0.2,
        "nursing",
        (
            "I'm a nurse on a hospital ward and have been nursing for {years}.",
            "I work as a registered nurse; {years} of night shifts and patient care.",
        ),
        min_age=21,
        max_age=70,
    ),
    _Occupation(
        "school teacher",
        1.0,
        (0, 0, 0.5, 6, 4, 0.2),
        2.0,
        0.3,
        "education",
        (
            "I teach at a secondary school and have been in the classroom for {years}.",
            "I'm a school teacher; for {years} I've been marking homework every evening.",
        ),
        min_age=22,
        max_age=70,
    ),
    _Occupation(
        "social worker",
        0.6,
        (0, 0, 0.5, 5, 4, 0.2),
        1.5,
        0.1,
        "social work",
        (
            "I'm a social worker and have supported families in crisis for {years}.",
            "I work in social services, a job I've done for {years}.",
        ),
        min_age=22,
        max_age=70,
    ),
    _Occupation(
        "accountant",
        0.8,
        (0, 0.2, 1, 6, 3, 0.1),
        3.0,
        0.6,
        "accounting",
        (
            "I'm an accountant and have spent {years} on balance sheets and tax returns.",
            "I work in accounting; {years} of spreadsheets, audits and deadlines.",
        ),
        min_age=22,
        max_age=72,
    ),
    _Occupation(
        "software engineer",
        1.0,
        (0, 0.3, 1.5, 6, 3, 0.5),
        3.4,
        2.2,
        "computer science",
        (
            "I'm a software engineer and have been writing code professionally for {years}.",
            "I build software for a living; {years} of shipping code and fixing bugs.",
        ),
        max_age=68,
    ),
    _Occupation(
        "research scientist",
        0.5,
        (0, 0, 0, 0.5, 3, 6),
        3.0,
        1.6,
        "chemistry",
        (
            "I'm a research scientist and have run experiments in a lab for {years}.",
            "I do research for a living; {years} of experiments, data and papers.",
        ),
        min_age=25,
        max_age=75,
    ),
    _Occupation(
        "physician",
        0.9,
        (0, 0, 0, 0, 0.2, 6),
        4.1,
        1.0,
        "medicine",
        (
            "I'm a physician and have been treating patients for {years}.",
            "I work as a doctor; {years} of diagnoses, clinics and on-call nights.",
        ),
        min_age=27,
        max_age=75,
    ),
    _Occupation(
        "lawyer",
        0.8,
        (0, 0, 0, 0.2, 1, 6),
        3.8,
        0.6,
        "law",
        (
            "I'm a lawyer and have practised law for {years}.",
            "I work as an attorney; {years} of contracts, court dates and clients.",
        ),
        min_age=25,
        max_age=75,
    ),
    _Occupation(
        "university professor",
        0.4,
        (0, 0, 0, 0, 0.5, 6),
        3.2,
        1.2,
        "history",
        (
            "I'm a university professor and have been teaching and researching for {years}.",
            "I teach at a university; {years} of lectures, students and grant proposals.",
        ),
        min_age=30,
        max_age=75,
    ),
    _Occupation(
        "small business owner",
        0.8,
        (1, 3, 3, 3, 1, 0.2),
        2.6,
        0.4,
        "business",
        (
            "I run my own small business and have been my own boss for {years}.",
            "I own a small shop; {years} of payroll, suppliers and loyal customers.",
        ),
        min_age=23,
        max_age=75,
    ),
    _Occupation(
        "artist",
        0.5,
        (0.5, 2, 3, 4, 2, 0.2),
        0.8,
        0.5,
        "fine arts",
        (
            "I'm a working artist and have made a living from my paintings for {years}.",
            "I make art for a living; {years} of commissions, exhibitions and lean months.",
        ),
    ),
    _Occupation(
        "retiree",
        0.0,
        (1, 1, 1, 1, 1, 1),
        1.8,
        -1.0,
        "economics",
        (
            "I'm retired now, after {years} of working life.",
            "I retired a few years ago; I worked for {years} before that.",
        ),
        min_age=58,
        max_age=100,
        rural=1.3,
    ),
)
_OCCUPATION = {o.label: o for o in _OCCUPATIONS}

# country -> region, cities, first names (women, men, gender-neutral), surnames
_COUNTRIES: dict[str, dict[str, Any]] = {
    "United States": {
        "region": "North America",
        "cities": ("Chicago", "Denver", "Atlanta", "Seattle"),
        "woman": ("Emily", "Jessica", "Sarah", "Megan", "Rachel", "Ashley"),
        "man": ("Michael", "David", "James", "Tyler", "Brandon", "Ethan"),
        "non-binary": ("Jordan", "Taylor", "Riley"),
        "surnames": ("Johnson", "Miller", "Anderson", "Thompson", "Clark", "Walker", "Garcia"),
    },
    "Canada": {
        "region": "North America",
        "cities": ("Toronto", "Vancouver", "Montreal", "Calgary"),
        "woman": ("Olivia", "Hannah", "Chloe", "Émilie", "Madison", "Avery"),
        "man": ("Liam", "Connor", "Mathieu", "Owen", "Ryan", "Nathan"),
        "non-binary": ("Casey", "Morgan", "Dominique"),
        "surnames": ("Tremblay", "Roy", "Campbell", "MacDonald", "Gagnon", "Wilson", "Singh"),
    },
    "Mexico": {
        "region": "Latin America",
        "cities": ("Mexico City", "Guadalajara", "Monterrey", "Puebla"),
        "woman": ("María", "Guadalupe", "Fernanda", "Ximena", "Daniela", "Sofía"),
        "man": ("José", "Juan", "Luis", "Miguel", "Alejandro", "Santiago"),
        "non-binary": ("Ariel", "Alex", "Cruz"),
        "surnames": ("Hernández", "García", "Martínez", "López", "González", "Ramírez"),
    },
    "Colombia": {
        "region": "Latin America",
        "cities": ("Bogotá", "Medellín", "Cali"),
        "woman": ("Valentina", "Camila", "Luisa", "Natalia", "Andrea", "Paula"),
        "man": ("Andrés", "Camilo", "Juan David", "Felipe", "Sebastián", "Diego"),
        "non-binary": ("Alexis", "Ariel", "René"),
        "surnames": ("Rodríguez", "Gómez", "Castro", "Vargas", "Moreno", "Rojas"),
    },
    "Brazil": {
        "region": "Latin America",
        "cities": ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Recife"),
        "woman": ("Ana", "Juliana", "Beatriz", "Larissa", "Mariana", "Fernanda"),
        "man": ("Thiago", "Rafael", "Lucas", "Gabriel", "Pedro", "Matheus"),
        "non-binary": ("Ariel", "Cris", "Dani"),
        "surnames": ("Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa"),
    },
    "Argentina": {
        "region": "Latin America",
        "cities": ("Buenos Aires", "Córdoba", "Rosario"),
        "woman": ("Lucía", "Martina", "Florencia", "Agustina", "Carolina", "Julieta"),
        "man": ("Mateo", "Facundo", "Nicolás", "Martín", "Tomás", "Federico"),
        "non-binary": ("Alex", "Ariel", "Noa"),
        "surnames": ("Fernández", "González", "Romero", "Sosa", "Álvarez", "Benítez"),
    },
    "France": {
        "region": "Western Europe",
        "cities": ("Lyon", "Paris", "Marseille", "Toulouse"),
        "woman": ("Claire", "Camille", "Marie", "Chloé", "Léa", "Élodie"),
        "man": ("Pierre", "Julien", "Thomas", "Nicolas", "Hugo", "Antoine"),
        "non-binary": ("Camille", "Dominique", "Sacha"),
        "surnames": ("Dubois", "Martin", "Moreau", "Lefebvre", "Bernard", "Girard"),
    },
    "Germany": {
        "region": "Western Europe",
        "cities": ("Hamburg", "Munich", "Cologne", "Leipzig"),
        "woman": ("Anna", "Laura", "Julia", "Katharina", "Lena", "Sabine"),
        "man": ("Lukas", "Jonas", "Felix", "Stefan", "Tobias", "Markus"),
        "non-binary": ("Sascha", "Kim", "Robin"),
        "surnames": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker"),
    },
    "United Kingdom": {
        "region": "Western Europe",
        "cities": ("Manchester", "London", "Glasgow", "Bristol"),
        "woman": ("Charlotte", "Emma", "Sophie", "Amelia", "Lucy", "Eleanor"),
        "man": ("Oliver", "George", "Harry", "Jack", "William", "Callum"),
        "non-binary": ("Charlie", "Alex", "Jamie"),
        "surnames": ("Smith", "Jones", "Wright", "Evans", "Hughes", "Patel", "Taylor"),
    },
    "Netherlands": {
        "region": "Western Europe",
        "cities": ("Rotterdam", "Amsterdam", "Utrecht"),
        "woman": ("Lotte", "Sanne", "Femke", "Anouk", "Eva", "Marieke"),
        "man": ("Jan", "Daan", "Sem", "Thijs", "Bram", "Pieter"),
        "non-binary": ("Robin", "Sam", "Noa"),
        "surnames": ("de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "de Boer"),
    },
    "Spain": {
        "region": "Western Europe",
        "cities": ("Seville", "Madrid", "Barcelona", "Valencia"),
        "woman": ("Carmen", "Lucía", "Marta", "Elena", "Paula", "Nuria"),
        "man": ("Pablo", "Javier", "Sergio", "Álvaro", "Jorge", "Manuel"),
        "non-binary": ("Alex", "Noa", "Ariel"),
        "surnames": ("Sánchez", "García", "Pérez", "Navarro", "Ruiz", "Jiménez"),
    },
    "Poland": {
        "region": "Eastern Europe",
        "cities": ("Warsaw", "Kraków", "Gdańsk", "Wrocław"),
        "woman": ("Katarzyna", "Anna", "Zofia", "Magdalena", "Agnieszka", "Joanna"),
        "man": ("Piotr", "Tomasz", "Jakub", "Krzysztof", "Marcin", "Paweł"),
        "non-binary": ("Aleks", "Sasza", "Nikola"),
        "surnames": ("Nowak", "Kowalski", "Wiśniewski", "Lewandowski", "Wójcik", "Kamińska"),
    },
    "Czechia": {
        "region": "Eastern Europe",
        "cities": ("Prague", "Brno", "Ostrava"),
        "woman": ("Petra", "Tereza", "Lucie", "Jana", "Veronika", "Eva"),
        "man": ("Pavel", "Jiří", "Tomáš", "Martin", "Ondřej", "Lukáš"),
        "non-binary": ("Saša", "Nikola", "Alex"),
        "surnames": ("Novák", "Dvořák", "Svoboda", "Černý", "Procházka", "Kučera"),
    },
    "Romania": {
        "region": "Eastern Europe",
        "cities": ("Bucharest", "Cluj-Napoca", "Iași"),
        "woman": ("Ioana", "Elena", "Andreea", "Maria", "Cristina", "Alina"),
        "man": ("Andrei", "Mihai", "Alexandru", "Ion", "Cristian", "Bogdan"),
        "non-binary": ("Alex", "Sasha", "Andi"),
        "surnames": ("Popescu", "Ionescu", "Popa", "Dumitru", "Stan", "Constantin"),
    },
    "Ukraine": {
        "region": "Eastern Europe",
        "cities": ("Kyiv", "Lviv", "Kharkiv", "Odesa"),
        "woman": ("Olena", "Iryna", "Oksana", "Nataliia", "Yulia", "Kateryna"),
        "man": ("Mykola", "Dmytro", "Oleksandr", "Andrii", "Serhii", "Taras"),
        "non-binary": ("Sasha", "Zhenia", "Valia"),
        "surnames": ("Shevchenko", "Kovalenko", "Bondarenko", "Melnyk", "Tkachenko", "Kravets"),
    },
    "Egypt": {
        "region": "Middle East and North Africa",
        "cities": ("Cairo", "Alexandria", "Giza"),
        "woman": ("Fatima", "Nour", "Mariam", "Salma", "Aya", "Heba"),
        "man": ("Ahmed", "Mohamed", "Omar", "Mahmoud", "Youssef", "Khaled"),
        "non-binary": ("Nour", "Salam", "Rida"),
        "surnames": ("El-Sayed", "Hassan", "Mansour", "Abdel-Rahman", "Fathy", "Saleh"),
    },
    "Jordan": {
        "region": "Middle East and North Africa",
        "cities": ("Amman", "Irbid", "Zarqa"),
        "woman": ("Layla", "Rania", "Dana", "Lina", "Hala", "Sara"),
        "man": ("Tariq", "Faisal", "Zaid", "Hamza", "Sami", "Rami"),
        "non-binary": ("Dana", "Nur", "Rayan"),
        "surnames": ("Haddad", "Khoury", "Nasser", "Qasem", "Azar", "Shami"),
    },
    "Morocco": {
        "region": "Middle East and North Africa",
        "cities": ("Casablanca", "Marrakesh", "Rabat", "Fez"),
        "woman": ("Amina", "Khadija", "Meryem", "Zineb", "Hanane", "Imane"),
        "man": ("Karim", "Hicham", "Mehdi", "Yassine", "Rachid", "Anas"),
        "non-binary": ("Nour", "Rayan", "Aya"),
        "surnames": ("Benali", "Alaoui", "El Idrissi", "Bennani", "Tazi", "Amrani"),
    },
    "Turkey": {
        "region": "Middle East and North Africa",
        "cities": ("Istanbul", "Ankara", "Izmir", "Bursa"),
        "woman": ("Zeynep", "Elif", "Ayşe", "Merve", "Esra", "Defne"),
        "man": ("Mehmet", "Emre", "Mustafa", "Burak", "Can", "Murat"),
        "non-binary": ("Deniz", "Umut", "Evren"),
        "surnames": ("Yılmaz", "Demir", "Kaya", "Şahin", "Çelik", "Aydın"),
    },
    "Nigeria": {
        "region": "Sub-Saharan Africa",
        "cities": ("Lagos", "Abuja", "Ibadan", "Port Harcourt"),
        "woman": ("Chioma", "Amara", "Ngozi", "Funmilayo", "Aisha", "Folake"),
        "man": ("Chinedu", "Tunde", "Emeka", "Oluwaseun", "Ibrahim", "Obinna"),
        "non-binary": ("Ayo", "Tobi", "Dayo"),
        "surnames": ("Okafor", "Adeyemi", "Eze", "Okonkwo", "Bello", "Balogun"),
    },
    "Kenya": {
        "region": "Sub-Saharan Africa",
        "cities": ("Nairobi", "Mombasa", "Kisumu"),
        "woman": ("Wanjiru", "Akinyi", "Njeri", "Achieng", "Wambui", "Faith"),
        "man": ("Otieno", "Kamau", "Kipchoge", "Mwangi", "Brian", "Ochieng"),
        "non-binary": ("Kamau", "Imani", "Baraka"),
        "surnames": ("Mwangi", "Kamau", "Odhiambo", "Kiprop", "Wanjala", "Njoroge"),
    },
    "Ghana": {
        "region": "Sub-Saharan Africa",
        "cities": ("Accra", "Kumasi", "Tamale"),
        "woman": ("Ama", "Akosua", "Abena", "Efua", "Adwoa", "Esi"),
        "man": ("Kwame", "Kofi", "Kwabena", "Yaw", "Kojo", "Kwesi"),
        "non-binary": ("Sena", "Esi", "Nana"),
        "surnames": ("Mensah", "Boateng", "Asante", "Owusu", "Appiah", "Darko"),
    },
    "South Africa": {
        "region": "Sub-Saharan Africa",
        "cities": ("Johannesburg", "Cape Town", "Durban"),
        "woman": ("Thandiwe", "Zanele", "Lerato", "Nomvula", "Anneke", "Palesa"),
        "man": ("Sipho", "Thabo", "Bongani", "Pieter", "Mandla", "Lwazi"),
        "non-binary": ("Themba", "Lesedi", "Kgosi"),
        "surnames": ("Ndlovu", "Dlamini", "Nkosi", "Botha", "Mokoena", "van der Merwe"),
    },
    "Ethiopia": {
        "region": "Sub-Saharan Africa",
        "cities": ("Addis Ababa", "Bahir Dar", "Hawassa"),
        "woman": ("Makeda", "Selam", "Hiwot", "Meron", "Tigist", "Bethlehem"),
        "man": ("Abebe", "Dawit", "Yonas", "Tesfaye", "Bereket", "Henok"),
        "non-binary": ("Amanuel", "Selam", "Nahom"),
        "surnames": ("Tesfaye", "Bekele", "Haile", "Girma", "Alemu", "Tadesse"),
    },
    "India": {
        "region": "South Asia",
        "cities": ("Mumbai", "Bengaluru", "Delhi", "Chennai"),
        "woman": ("Priya", "Ananya", "Kavya", "Deepa", "Sneha", "Lakshmi"),
        "man": ("Rahul", "Arjun", "Rohan", "Vikram", "Aditya", "Karthik"),
        "non-binary": ("Kiran", "Jyoti", "Ashwin"),
        "surnames": ("Sharma", "Patel", "Iyer", "Gupta", "Reddy", "Nair"),
    },
    "Pakistan": {
        "region": "South Asia",
        "cities": ("Lahore", "Karachi", "Islamabad"),
        "woman": ("Ayesha", "Sana", "Hira", "Mahnoor", "Zainab", "Fatima"),
        "man": ("Imran", "Bilal", "Usman", "Ali", "Hamza", "Asad"),
        "non-binary": ("Noor", "Sami", "Rumi"),
        "surnames": ("Khan", "Malik", "Qureshi", "Butt", "Chaudhry", "Siddiqui"),
    },
    "Bangladesh": {
        "region": "South Asia",
        "cities": ("Dhaka", "Chittagong", "Sylhet"),
        "woman": ("Fatema", "Nusrat", "Tahmina", "Sumaiya", "Rupa", "Shirin"),
        "man": ("Farhan", "Rafiq", "Tanvir", "Sakib", "Arif", "Mahmud"),
        "non-binary": ("Noor", "Shuvo", "Joy"),
        "surnames": ("Rahman", "Hossain", "Islam", "Ahmed", "Chowdhury", "Uddin"),
    },
    "Sri Lanka": {
        "region": "South Asia",
        "cities": ("Colombo", "Kandy", "Galle"),
        "woman": ("Nimali", "Dilini", "Sanduni", "Tharushi", "Anjali", "Kumari"),
        "man": ("Kasun", "Nuwan", "Chaminda", "Ruwan", "Dinesh", "Lahiru"),
        "non-binary": ("Sahan", "Ishara", "Dilan"),
        "surnames": ("Perera", "Fernando", "Silva", "Jayawardena", "Bandara", "Wickramasinghe"),
    },
    "Japan": {
        "region": "East Asia",
        "cities": ("Osaka", "Tokyo", "Nagoya", "Fukuoka"),
        "woman": ("Yuki", "Sakura", "Haruka", "Aoi", "Yui", "Misaki"),
        "man": ("Haruto", "Kenji", "Takumi", "Daiki", "Sota", "Hiroshi"),
        "non-binary": ("Hikaru", "Makoto", "Akira"),
        "surnames": ("Tanaka", "Sato", "Suzuki", "Watanabe", "Takahashi", "Yamamoto"),
    },
    "South Korea": {
        "region": "East Asia",
        "cities": ("Seoul", "Busan", "Incheon", "Daegu"),
        "woman": ("Ji-woo", "Min-seo", "Seo-yeon", "Ha-eun", "Soo-jin", "Eun-ji"),
        "man": ("Min-jun", "Ji-hoon", "Hyun-woo", "Seung-ho", "Do-yoon", "Jae-won"),
        "non-binary": ("Ji-an", "Ha-neul", "Yoon"),
        "surnames": ("Kim", "Lee", "Park", "Choi", "Jung", "Kang"),
    },
    "Taiwan": {
        "region": "East Asia",
        "cities": ("Taipei", "Kaohsiung", "Taichung"),
        "woman": ("Yu-ting", "Mei-ling", "Shu-fen", "Hsin-yi", "Ya-ting", "Pei-shan"),
        "man": ("Chih-hao", "Wei-lun", "Chia-hao", "Tsung-han", "Yu-cheng", "Po-wei"),
        "non-binary": ("Yu", "An", "Ching"),
        "surnames": ("Chen", "Lin", "Huang", "Chang", "Wang", "Tsai"),
    },
    "Philippines": {
        "region": "Southeast Asia",
        "cities": ("Manila", "Cebu City", "Davao City"),
        "woman": ("Maria Clara", "Angelica", "Kristine", "Jasmine", "Rowena", "Liza"),
        "man": ("Juan", "Paolo", "Mark", "Rodel", "Carlo", "Jomar"),
        "non-binary": ("Ash", "Jules", "Kai"),
        "surnames": ("Santos", "Reyes", "Cruz", "Bautista", "Ramos", "Mendoza"),
    },
    "Indonesia": {
        "region": "Southeast Asia",
        "cities": ("Jakarta", "Surabaya", "Bandung", "Yogyakarta"),
        "woman": ("Siti", "Putri", "Dewi", "Ayu", "Rina", "Nurul"),
        "man": ("Budi", "Agus", "Rizal", "Eko", "Dimas", "Arif"),
        "non-binary": ("Dian", "Tri", "Adi"),
        "surnames": ("Wijaya", "Santoso", "Hidayat", "Saputra", "Kusuma", "Pratama"),
    },
    "Thailand": {
        "region": "Southeast Asia",
        "cities": ("Bangkok", "Chiang Mai", "Khon Kaen"),
        "woman": ("Nong", "Ploy", "Siriporn", "Kanya", "Malee", "Ratana"),
        "man": ("Somchai", "Anan", "Niran", "Kittisak", "Chaiya", "Prasert"),
        "non-binary": ("Ploy", "Nat", "Tee"),
        "surnames": ("Saetang", "Srisuk", "Wongsa", "Chaiyaporn", "Boonmee", "Rattanakul"),
    },
    "Vietnam": {
        "region": "Southeast Asia",
        "cities": ("Ho Chi Minh City", "Hanoi", "Da Nang"),
        "woman": ("Linh", "Mai", "Thao", "Huong", "Lan", "Ngoc"),
        "man": ("Minh", "Tuan", "Duc", "Huy", "Long", "Quang"),
        "non-binary": ("An", "Khanh", "Binh"),
        "surnames": ("Nguyen", "Tran", "Pham", "Le", "Hoang", "Vu"),
    },
    "Australia": {
        "region": "Oceania",
        "cities": ("Sydney", "Melbourne", "Brisbane", "Perth"),
        "woman": ("Isla", "Grace", "Mia", "Ruby", "Matilda", "Georgia"),
        "man": ("Jack", "Noah", "Cooper", "Harrison", "Lachlan", "Mitchell"),
        "non-binary": ("Frankie", "Quinn", "Sam"),
        "surnames": ("Smith", "Wilson", "Kelly", "O'Connor", "Brown", "Nguyen"),
    },
    "New Zealand": {
        "region": "Oceania",
        "cities": ("Auckland", "Wellington", "Christchurch"),
        "woman": ("Aroha", "Olivia", "Amelia", "Mere", "Charlotte", "Ngaio"),
        "man": ("Tane", "Oliver", "Wiremu", "Lucas", "Hemi", "Finn"),
        "non-binary": ("Rangi", "Ari", "Manaia"),
        "surnames": ("Ngata", "Walsh", "Taylor", "Parata", "Campbell", "Williams"),
    },
}
_REGIONS = tuple(dict.fromkeys(c["region"] for c in _COUNTRIES.values()))

# hobby -> preference for (young, old, rural)
_HOBBIES = {
    "gardening": (-0.8, 1.2, 0.6),
    "hiking": (0.2, 0.0, 0.5),
    "playing video games": (1.5, -1.5, 0.0),
    "cooking for friends": (0.0, 0.2, 0.0),
    "reading novels": (-0.1, 0.6, 0.0),
    "running": (0.6, -0.6, 0.0),
    "painting watercolours": (0.0, 0.5, 0.0),
    "fishing": (-0.3, 0.6, 1.2),
    "playing chess": (0.0, 0.4, 0.0),
    "birdwatching": (-1.0, 1.3, 0.6),
    "taking photographs": (0.4, 0.0, 0.0),
    "playing the guitar": (0.8, -0.3, 0.0),
    "knitting": (-0.6, 1.0, 0.2),
    "volunteering at a food bank": (0.0, 0.6, 0.0),
    "playing football": (1.0, -1.0, 0.2),
    "going to the cinema": (0.6, -0.2, -0.6),
}


# --------------------------------------------------------------------------- generation


def generate_personas(n: int = N_PERSONAS, *, seed: int = SEED) -> list[Persona]:
    """``n`` personas with ids ``p000``, ``p001``, ...; persona ``i`` depends on ``i`` only."""
    width = max(3, len(str(n - 1)))
    return [_persona(f"p{i:0{width}d}", random.Random(f"pvx-demo:{seed}:{i}")) for i in range(n)]


def baseline_persona() -> Persona:
    """The ``baseline_assistant`` persona: the model's default voice, no attributes."""
    return Persona(BASELINE_ID, "Helpful assistant", dict.fromkeys(ATTRIBUTE_KINDS))


def all_personas(n: int = N_PERSONAS, *, seed: int = SEED) -> list[Persona]:
    """The baseline first, then :func:`generate_personas`."""
    return [baseline_persona(), *generate_personas(n, seed=seed)]


def _persona(pid: str, rng: random.Random) -> Persona:
    gender = _choice(rng, ("woman", "man", "non-binary"), (0.48, 0.48, 0.04))
    region = _choice(rng, _REGIONS)
    country = _choice(rng, [c for c, t in _COUNTRIES.items() if t["region"] == region])
    table = _COUNTRIES[country]
    city = _choice(rng, table["cities"])
    name = f"{_choice(rng, table[gender])} {_choice(rng, table['surnames'])}"
    age = round(min(84.0, max(18.0, _gauss(rng, 44.0, 16.0))))

    # Education: younger people can't have finished long degrees yet; older cohorts
    # studied less on average.
    weights = [0.09, 0.27, 0.19, 0.27, 0.13, 0.06]
    top = 2 if age < 21 else 3 if age < 23 else 4 if age < 25 else 5
    cohort = max(0.0, (age - 50) / 30)
    weights = [
        0.0 if k > top else w * math.exp(cohort * (1.2 - 0.5 * k)) for k, w in enumerate(weights)
    ]
    education = _choice(rng, range(len(EDUCATION_ORDER)), weights)

    occupation = _choice(
        rng, _OCCUPATIONS, [_occupation_weight(o, age, education) for o in _OCCUPATIONS]
    )

    start = (17, 18, 20, 22, 24, 28)[education] + _choice(rng, (0, 0, 1, 2, 3))
    if occupation.label == "student":
        years = max(0, min(age - 18, _choice(rng, (0, 1, 2))))
    elif occupation.label == "retiree":
        years = max(5, min(age, _choice(rng, range(58, 68))) - start)
    else:
        years = max(1, age - start - _choice(rng, (0, 0, 1, 2, 4, 6)))

    # Income: occupation sets the level; education, experience and (working) age move it.
    level = occupation.income + 0.25 * (education - 3) + _gauss(rng, 0.0, 0.55)
    if occupation.label not in ("student", "retiree"):
        level += 0.9 * min(years, 25) / 25 - 0.45
    income = int(min(4, max(0, round(level))))

    rural_weight = 0.2 * occupation.rural
    urbanicity = _choice(rng, ("urban", "suburban", "rural"), (0.45, 0.35, rural_weight))

    if age < 25:
        marital = _choice(rng, ("single", "married"), (0.85, 0.15))
    elif age < 40:
        marital = _choice(rng, ("single", "married", "divorced"), (0.4, 0.5, 0.1))
    elif age < 65:
        marital = _choice(rng, ("single", "married", "divorced", "widowed"), (0.15, 0.6, 0.2, 0.05))
    else:
        marital = _choice(rng, ("single", "married", "divorced", "widowed"), (0.08, 0.5, 0.12, 0.3))
    mean_children = {"single": 0.3, "married": 2.0, "divorced": 1.5, "widowed": 2.3}[marital]
    mean_children *= min(1.0, max(0.0, (age - 20) / 15))
    children = _choice(rng, range(6), [_poisson(mean_children, k) for k in range(6)])

    tech_score = 1.0 - (age - 40) / 22 + occupation.tech + 0.15 * (education - 2)
    tech_score += _gauss(rng, 0.0, 0.6)
    tech = 0 if tech_score < 0.4 else 1 if tech_score < 1.6 else 2

    young, old = max(0.0, (35 - age) / 15), max(0.0, (age - 50) / 20)
    rural = 1.0 if urbanicity == "rural" else 0.0
    hobby = _choice(
        rng,
        list(_HOBBIES),
        [math.exp(a * young + b * old + c * rural) for a, b, c in _HOBBIES.values()],
    )

    attributes = {
        "age": age,
        "years_experience": years,
        "children": children,
        "education": EDUCATION_ORDER[education],
        "income_bracket": INCOME_ORDER[income],
        "tech_comfort": TECH_ORDER[tech],
        "gender": gender,
        "region": region,
        "country": country,
        "city": city,
        "urbanicity": urbanicity,
        "occupation": occupation.label,
        "marital_status": marital,
        "hobby": hobby,
    }
    return Persona(pid, name, attributes)


def _occupation_weight(occupation: _Occupation, age: int, education: int) -> float:
    if not occupation.min_age <= age <= occupation.max_age:
        return 0.0
    weight = occupation.weight * occupation.education[education]
    if occupation.label == "retiree":
        weight = 2.0 * min(1.0, (age - occupation.min_age) / 10) ** 2 * 8
    elif occupation.label == "student":
        weight *= 6.0 if age < 23 else 1.0
    elif age > 62:
        weight *= max(0.1, 1 - (age - 62) / 10)
    return weight


# --------------------------------------------------------------------------- rendering


def render(persona: Persona, variant: str, *, seed: int = SEED) -> str:
    """The text of one persona under one prompt variant (``templated`` or ``biography``)."""
    if variant == "templated":
        return _templated(persona)
    if variant == "biography":
        return _biography(persona, random.Random(f"pvx-demo-bio:{seed}:{persona.id}"))
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")


_TEMPLATE_FIELDS = (
    ("Age", "age"),
    ("Gender", "gender"),
    ("Region", "region"),
    ("Country", "country"),
    ("City", "city"),
    ("Setting", "urbanicity"),
    ("Education", "education"),
    ("Occupation", "occupation"),
    ("Years of work experience", "years_experience"),
    ("Income bracket", "income_bracket"),
    ("Marital status", "marital_status"),
    ("Children", "children"),
    ("Comfort with technology", "tech_comfort"),
    ("Favourite hobby", "hobby"),
)


def _templated(persona: Persona) -> str:
    if persona.id == BASELINE_ID:
        return (
            "Persona profile\nName: Assistant\nRole: helpful assistant\n"
            "Description: a neutral, helpful AI assistant with no personal background"
        )
    lines = ["Persona profile", f"Name: {persona.name}"]
    lines += [f"{label}: {persona.attributes[key]}" for label, key in _TEMPLATE_FIELDS]
    return "\n".join(lines)


_THE_COUNTRIES = {"United States", "United Kingdom", "Netherlands", "Philippines"}
_STUDENT_FIELDS = (
    "biology",
    "computer science",
    "economics",
    "nursing",
    "mechanical engineering",
    "psychology",
    "history",
    "graphic design",
)
_GENDER_NOUN = {"woman": "woman", "man": "man", "non-binary": "non-binary person"}
_NUMBERS = ("no", "one", "two", "three", "four", "five")

_EDUCATION_SENTENCES = (
    (
        "I left school before finishing high school.",
        "I never finished high school; I started working young.",
        "School wasn't for me, and I left before getting my diploma.",
    ),
    (
        "I finished high school and went straight into work.",
        "My formal education ended with a high school diploma.",
        "I have a high school diploma and learned the rest on the job.",
    ),
    (
        "I took some college courses in {field} but never finished a degree.",
        "I went to college for a while to study {field}, but left without a degree.",
        "I have some college credits in {field}, though no degree.",
    ),
    (
        "I have a bachelor's degree in {field}.",
        "I studied {field} at university and earned my bachelor's.",
        "I graduated from university with a degree in {field}.",
    ),
    (
        "I hold a master's degree in {field}.",
        "After my first degree I went on to a master's in {field}.",
        "I studied {field} up to master's level.",
    ),
    (
        "I earned a doctorate in {field}.",
        "I spent years on a PhD in {field}, and I'm proud to have finished it.",
        "I hold a doctoral degree in {field}.",
    ),
)
# Students: what they have finished so far (the education level) and what they study now.
_STUDENT_SENTENCES = (
    ("I left school early and am now catching up on {field} at a community college.",),
    (
        "I finished high school recently and now study {field} at college.",
        "With my high school diploma in hand, I've just started studying {field}.",
    ),
    (
        "I'm partway through a degree in {field}.",
        "I've done a couple of years of college in {field} and am still going.",
    ),
    (
        "I already have a bachelor's degree and am now studying {field} further.",
        "After my bachelor's I went back to study {field} at graduate level.",
    ),
    ("I have a master's degree and am now working towards a doctorate in {field}.",),
    ("I hold a doctorate and am retraining in {field}.",),
)
_INCOME_SENTENCES = (
    (
        "Money is tight, and I live paycheck to paycheck.",
        "I don't earn much; every bill is a worry.",
        "Making ends meet is a struggle most months.",
    ),
    (
        "I get by, but there's not much left at the end of the month.",
        "My income is modest, so I budget carefully.",
        "We manage on a modest income, with little room for extras.",
    ),
    (
        "I earn a middle-of-the-road income that covers the basics and a holiday now and then.",
        "Financially I'm comfortable, neither rich nor poor.",
        "My pay is average, enough for a comfortable, ordinary life.",
    ),
    (
        "I'm well paid and manage to save a good part of what I earn.",
        "My income is comfortably above average.",
        "Money isn't a worry; I earn well and invest some of it.",
    ),
    (
        "I earn a high income and rarely think about money.",
        "I'm very well off financially.",
        "My earnings put me among the top earners where I live.",
    ),
)
_TECH_SENTENCES = (
    (
        "New technology confuses me; I'd rather phone someone than send a message.",
        "I'm not good with computers and ask my family for help with my phone.",
        "Gadgets and apps frustrate me, so I avoid them when I can.",
    ),
    (
        "I use a smartphone and a laptop without much fuss.",
        "I'm reasonably comfortable with technology, though I'm no expert.",
        "Technology is a tool for me: I use what I need and ignore the rest.",
    ),
    (
        "I love technology and am always the first to try new gadgets.",
        "I'm very comfortable with computers; friends call me when their devices break.",
        "I'm a heavy technology user and automate whatever I can.",
    ),
)


def _biography(persona: Persona, rng: random.Random) -> str:
    if persona.id == BASELINE_ID:
        return (
            "I am a helpful assistant. I have no personal life story: my purpose is to answer "
            "questions clearly, accurately and politely, and to help with whatever task you "
            "bring me."
        )
    a = persona.attributes
    first = persona.name.split(" ")[0] if " " in persona.name else persona.name
    noun = _GENDER_NOUN[a["gender"]]
    article = "an" if str(a["age"]).startswith(("8", "11", "18")) else "a"
    land = f"the {a['country']}" if a["country"] in _THE_COUNTRIES else a["country"]
    occupation = _OCCUPATION[a["occupation"]]
    intro = _choice(
        rng,
        (
            f"My name is {persona.name}, and I'm {article} {a['age']}-year-old {noun}.",
            f"I'm {first}, a {noun} of {a['age']}.",
            f"Hi, I'm {persona.name}: {noun}, {a['age']} years old.",
            f"People call me {first}. I'm {article} {a['age']}-year-old {noun}.",
        ),
    )
    place = {
        "urban": (
            f"I live right in the middle of {a['city']}, {a['country']}.",
            f"Home is an apartment in central {a['city']}, in {land}.",
            f"I'm a city person, living in downtown {a['city']}, {a['country']}.",
        ),
        "suburban": (
            f"I live in the suburbs of {a['city']}, {a['country']}.",
            f"Home is a quiet suburb on the edge of {a['city']}, in {land}.",
            f"I commute into {a['city']} from the suburbs; {land} is home.",
        ),
        "rural": (
            f"I live in the countryside outside {a['city']}, {a['country']}.",
            f"Home is a small village a couple of hours from {a['city']}, in {land}.",
            f"I live out in rural {land}, far from the bustle of {a['city']}.",
        ),
    }[a["urbanicity"]]
    level = EDUCATION_ORDER.index(a["education"])
    field = occupation.field
    if a["occupation"] == "student":
        field = _choice(rng, _STUDENT_FIELDS)
    marital, children = a["marital_status"], a["children"]
    kids = (
        "no children"
        if children == 0
        else f"{_NUMBERS[children]} {'child' if children == 1 else 'children'}"
    )
    family = {
        "single": (f"I'm single and have {kids}.", f"I'm not married, and I have {kids}."),
        "married": (f"I'm married with {kids}.", f"My spouse and I have {kids}."),
        "divorced": (
            f"I'm divorced and have {kids}.",
            f"Since my divorce I've been on my own; I have {kids}.",
        ),
        "widowed": (
            f"I'm widowed and have {kids}.",
            f"I lost my spouse some years ago; I have {kids}.",
        ),
    }[marital]
    hobby = a["hobby"]
    hobby_sentence = _choice(
        rng,
        (
            f"In my free time I enjoy {hobby}.",
            f"When I have time to myself, {hobby} is what keeps me sane.",
            f"Whenever I get a free weekend, you'll find me {hobby}.",
            f"My favourite pastime is {hobby}.",
        ),
    )
    body = [
        _choice(rng, place),
        _choice(
            rng,
            _STUDENT_SENTENCES[level]
            if a["occupation"] == "student"
            else _EDUCATION_SENTENCES[level],
        ).format(field=field),
        _choice(rng, occupation.work).format(years=_plural(a["years_experience"], "year")),
        _choice(rng, _INCOME_SENTENCES[INCOME_ORDER.index(a["income_bracket"])]),
        _choice(rng, family),
        _choice(rng, _TECH_SENTENCES[TECH_ORDER.index(a["tech_comfort"])]),
        hobby_sentence,
    ]
    _shuffle(rng, body)
    closing = _choice(
        rng,
        (
            "",
            "",
            "That's me in a nutshell.",
            "Life keeps me busy, but I wouldn't change much.",
            "I'm happy to talk about any of it.",
        ),
    )
    return " ".join([intro, *body, *([closing] if closing else [])])


# --------------------------------------------------------------------------- randomness


def _choice(rng: random.Random, items: Sequence[Any], weights: Sequence[float] | None = None):
    """A weighted choice using only ``rng.random()`` (stable across Python versions)."""
    items = list(items)
    weights = [1.0] * len(items) if weights is None else [float(w) for w in weights]
    total = sum(weights)
    if not items or total <= 0:
        raise ValueError("nothing to choose from")
    target, acc = rng.random() * total, 0.0
    for item, w in zip(items, weights, strict=True):
        acc += w
        if target < acc and w > 0:
            return item
    return next(item for item, w in zip(reversed(items), reversed(weights), strict=True) if w > 0)


def _shuffle(rng: random.Random, items: list[Any]) -> None:
    """Fisher-Yates with ``rng.random()`` only."""
    for i in range(len(items) - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        items[i], items[j] = items[j], items[i]


def _gauss(rng: random.Random, mu: float, sigma: float) -> float:
    """Box-Muller with ``rng.random()`` only."""
    u1, u2 = 1.0 - rng.random(), rng.random()
    return mu + sigma * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _poisson(mean: float, k: int) -> float:
    return math.exp(-mean) * mean**k / math.factorial(k) if mean > 0 else float(k == 0)
