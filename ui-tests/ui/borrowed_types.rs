use managers::shared;

#[derive(Default)]
pub struct Words {
    words: Vec<String>,
}

#[shared]
impl Words {
    pub fn push(&mut self, word: &mut String) {
        self.words.push(word.clone());
    }

    pub fn all(&self) -> Vec<&str> {
        self.words.iter().map(|w| w.as_str()).collect()
    }

    pub fn each(&self) -> impl Iterator<Item = String> + '_ {
        self.words.iter().cloned()
    }
}

fn main() {}
