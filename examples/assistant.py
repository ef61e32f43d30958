"""The application under test: an assistant that answers questions.

Here it returns canned text so that the examples run anywhere. In your suite this is the
code you ship: a call to your model, a retrieval pipeline, an agent. The tests only need a
function from a prompt to a response.
"""

from __future__ import annotations

DINOSAURS = "do dinosaurs really exist?"
GROTTO = "What is the Grotto at Notre Dame?"
STATUE = "What sits on top of the Main Building at Notre Dame?"
BASILICA = "The Basilica of the Sacred Heart at Notre Dame is beside which structure?"
NEWSPAPERS = "How many student newspapers are published at Notre Dame?"

ANSWERS = {
    DINOSAURS: """\
Yes. Dinosaurs really did exist, and in one sense they still exist today: birds are \
living dinosaurs.

- The evidence: paleontologists have dug up fossil bones, teeth and skulls on every \
continent, along with trackways pressed into ancient mud, nests of eggs, and impressions \
of skin and feathers.
- The timeline: the first dinosaurs appeared about 230 million years ago, in the Triassic \
period, and they dominated life on land through the Jurassic and Cretaceous.
- The extinction: about 66 million years ago an asteroid struck near the Yucatan \
peninsula in what is now Mexico. The impact and the climate upheaval that followed wiped \
out every non-avian dinosaur, from Tyrannosaurus to Triceratops.
- The survivors: one lineage of small feathered theropods came through, and every modern \
bird descends from it. Biologists therefore classify birds as dinosaurs, so the pigeon on \
a city square is a dinosaur too.

So dinosaurs are not a myth or a guess. They are real animals known from an enormous \
fossil record, and one branch of their family is still flying around us.""",
    GROTTO: (
        "The Grotto is a Marian place of prayer and reflection on the Notre Dame campus. "
        "It is a replica of the grotto at Lourdes, France, where the Virgin Mary is reputed "
        "to have appeared to Saint Bernadette Soubirous in 1858."
    ),
    STATUE: "A golden statue of the Virgin Mary stands on top of the Main Building's gold dome.",
    BASILICA: "It stands next to the Main Building.",
    NEWSPAPERS: (
        "Three student newspapers: The Observer, the independent daily, plus Common Sense "
        "and the Irish Rover, which were started as alternatives to it."
    ),
}


def answer(prompt: str) -> str:
    """The assistant's response to `prompt`."""
    return ANSWERS[prompt]
