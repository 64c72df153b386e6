"""A second, deliberately different model family, used to prove the seam: per-pixel RGB -> grey regression
on a made-up "*.npy files" format, answering one channel named "grey". Nothing in train/, serve/ or
container/ knows it; it is written exactly as the README's *Bring your own model* tells a user to (its imports
are relative, so the same package also runs mounted into the image as ``model.tinygrey``)."""
